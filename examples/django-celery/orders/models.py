from django.db import models


class Order(models.Model):
    item = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
    # Filled in by the tasks: which worker handled the order, and when.
    processed_by = models.CharField(max_length=200, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    notified_by = models.CharField(max_length=200, blank=True)

    def as_dict(self):
        return {
            "id": self.pk,
            "item": self.item,
            "created": self.created.isoformat(),
            "processed_by": self.processed_by,
            "processed_at": self.processed_at.isoformat() if self.processed_at else None,
            "notified_by": self.notified_by,
        }
