"""Topic names and keys: the contract between producers, the worker, the sink and notifiers."""

FC_EVENTS = "trackline.fc-events"  # key: order id; JSON fulfillment events
CARRIER_SCANS_RAW = "trackline.carrier-scans.raw"  # key: tracking number; header trackline-source
# Scans the router re-keyed to their own tracking number (an X12 interchange of several
# shipments): internal, so the raw topic, which any carrier integration writes to, accepts
# only external formats and nobody can forge a canonical scan there.
CARRIER_SCANS_REKEYED = "trackline.carrier-scans.rekeyed"  # key: tracking number; canonical scans
TRACKING_LINKS = "trackline.tracking-links"  # key: carrier:tracking number; internal
ORDER_EVENTS = "trackline.order-events"  # key: order id; canonical events, batched
CUSTOMER_PREFERENCES = "trackline.customer-preferences"  # key: customer id; compacted
NOTIFICATION_INTENTS = "trackline.notification-intents"  # key: customer id; internal, before preferences
NOTIFICATIONS = "trackline.notifications"  # key: order id; NotificationCommand JSON, addressed
ALERTS = "trackline.alerts"  # key: order id; Alert JSON (opened and closed), for ops tooling
# Delivered packages, for the lane models of our own estimate (models.transit); internal.
# The models go back to the order agents on ORDER_EVENTS, one copy per partition, keyed
# LANE_MODELS_KEY.
TRANSIT_OBSERVATIONS = "trackline.transit-observations"  # key: carrier
LANE_MODELS_KEY = b"\x00trackline:lane-models"
HISTORY = "trackline.history"  # key: order id; HistoryRecord JSON, batched
DLQ = "trackline.dlq"  # value: the original bytes; headers say why
# What notification workers did with each (command, channel): sent, failed, or held until due.
# Compacted; every notifier process reads it whole (models.delivery).
DELIVERY_LEDGER = "trackline.notifier-deliveries"  # key: "<command id>|<channel>"

SOURCE_HEADER = "trackline-source"
DLQ_REASON_HEADER = "trackline-dlq-reason"
DLQ_DETAIL_HEADER = "trackline-dlq-detail"
DLQ_TOPIC_HEADER = "trackline-dlq-topic"
DLQ_PARTITION_HEADER = "trackline-dlq-partition"
DLQ_OFFSET_HEADER = "trackline-dlq-offset"
DLQ_ERROR_TYPE_HEADER = "trackline-dlq-error-type"  # the exception's class name
DLQ_RECEIVED_AT_HEADER = "trackline-dlq-received-at"  # the original record's timestamp, epoch ms
DLQ_ERROR_FRAME_HEADER = "trackline-dlq-error-frame"  # file:line in function, of the traceback's last frame

# Topics keyed the same way must have the same partition count (co-partitioning).
PARTITIONED = [FC_EVENTS, CARRIER_SCANS_RAW, CARRIER_SCANS_REKEYED, TRACKING_LINKS, ORDER_EVENTS, CUSTOMER_PREFERENCES,
               NOTIFICATION_INTENTS, NOTIFICATIONS, ALERTS, HISTORY, TRANSIT_OBSERVATIONS]
COMPACTED = {CUSTOMER_PREFERENCES, DELIVERY_LEDGER}  # the latest value per key is the truth
ALL = [*PARTITIONED, DELIVERY_LEDGER, DLQ]
