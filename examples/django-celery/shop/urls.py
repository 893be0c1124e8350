from django.urls import path

from orders import views

urlpatterns = [
    path("healthz/", views.healthz),
    path("orders/", views.create_order),
    path("orders/<int:pk>/", views.order_detail),
    path("tasks/<str:name>/", views.enqueue),
    path("results/<uuid:task_id>/", views.task_result),
]
