from celery.result import AsyncResult
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import tasks
from .models import Order


@require_GET
def healthz(request):
    """Liveness/readiness for prodserver's http probe: the app is loaded and
    the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # report, don't crash the probe
        return JsonResponse({"status": "error", "error": str(exc)}, status=503)
    return JsonResponse({"status": "ok"})


@csrf_exempt
@require_POST
def create_order(request):
    """POST /orders/ [item=...]: store an order and enqueue its two tasks."""
    order = Order.objects.create(item=request.POST.get("item", "widget"))
    processed = tasks.process_order.delay(order.pk)  # routed to `default`
    notified = tasks.notify_customer.delay(order.pk)  # routed to `priority`
    return JsonResponse(
        {"order": order.pk, "process_task": processed.id, "notify_task": notified.id},
        status=202,
    )


@require_GET
def order_detail(request, pk):
    return JsonResponse(get_object_or_404(Order, pk=pk).as_dict())


# Tasks a test may enqueue over HTTP, with their (name, type) parameters.
ENQUEUEABLE = {
    "whoami": (tasks.whoami, []),
    "tick": (tasks.tick, []),
    "sleep": (tasks.sleep, [("seconds", float)]),
    "hog": (tasks.hog, [("mib", int)]),
}


@csrf_exempt
@require_POST
def enqueue(request, name):
    """POST /tasks/<name>/?queue=...&seconds=...&mib=...: enqueue a test task.
    Without `queue` the task follows CELERY_TASK_ROUTES."""
    try:
        task, params = ENQUEUEABLE[name]
    except KeyError:
        raise Http404(f"no task {name!r}; try one of {sorted(ENQUEUEABLE)}")
    data = request.GET.copy()
    data.update(request.POST)
    try:
        args = [kind(data[key]) for key, kind in params]
    except (KeyError, ValueError) as exc:
        return JsonResponse({"error": f"bad or missing parameter: {exc}"}, status=400)
    options = {"queue": data["queue"]} if data.get("queue") else {}
    result = task.apply_async(args=args, **options)
    return JsonResponse({"task_id": result.id, "task": task.name, **options}, status=202)


@require_GET
def task_result(request, task_id):
    """GET /results/<task_id>/: the task's state and, once finished, result."""
    result = AsyncResult(str(task_id))
    body = {"task_id": str(task_id), "state": result.state}
    if result.ready():
        body["result"] = result.result if result.successful() else repr(result.result)
    return JsonResponse(body)
