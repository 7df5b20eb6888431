"""Worker and beat configuration shared by every deployment.

Queues (DESIGN §4): ``sync`` (directory and login events), ``bulk`` (jobs), ``webhooks``
(deliveries) and ``maintenance`` (sweepers). Prefetch 1 with late acks: a job task holds
one message at a time, and a message is acknowledged only once its work committed.
"""

WORKER_CONFIG = {
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_max_tasks_per_child": 1000,
    # Our JSON handler (idp_sync.logs) stays on the root logger.
    "worker_hijack_root_logger": False,
    "worker_send_task_events": True,
    "task_send_sent_event": True,
}
