"""Nova's state names (stored in the database) and their drover.v1 enum values."""

from __future__ import annotations

from drover.v1 import types_pb2 as t

# vm_states
BUILDING, ACTIVE, STOPPED, ERROR, DELETED = "building", "active", "stopped", "error", "deleted"
# task_states
SCHEDULING, NETWORKING, BLOCK_DEVICE_MAPPING, SPAWNING, DELETING = (
    "scheduling",
    "networking",
    "block_device_mapping",
    "spawning",
    "deleting",
)

VM_STATE_TO_PB = {
    BUILDING: t.VM_STATE_BUILDING,
    ACTIVE: t.VM_STATE_ACTIVE,
    STOPPED: t.VM_STATE_STOPPED,
    ERROR: t.VM_STATE_ERROR,
    DELETED: t.VM_STATE_DELETED,
}
VM_STATE_FROM_PB = {v: k for k, v in VM_STATE_TO_PB.items()}

TASK_STATE_TO_PB = {
    None: t.TASK_STATE_UNSPECIFIED,
    SCHEDULING: t.TASK_STATE_SCHEDULING,
    NETWORKING: t.TASK_STATE_NETWORKING,
    BLOCK_DEVICE_MAPPING: t.TASK_STATE_BLOCK_DEVICE_MAPPING,
    SPAWNING: t.TASK_STATE_SPAWNING,
    DELETING: t.TASK_STATE_DELETING,
}
TASK_STATE_FROM_PB = {v: k for k, v in TASK_STATE_TO_PB.items()}

# Nova's vm_state → API status (nova/api/openstack/common.py _STATE_MAP, simplified).
STATUS_OF_VM_STATE = {
    BUILDING: t.SERVER_STATUS_BUILD,
    ACTIVE: t.SERVER_STATUS_ACTIVE,
    STOPPED: t.SERVER_STATUS_SHUTOFF,
    ERROR: t.SERVER_STATUS_ERROR,
    DELETED: t.SERVER_STATUS_DELETED,
}
VM_STATES_OF_STATUS = {v: k for k, v in STATUS_OF_VM_STATE.items()}

STATUS_NAMES = {
    "BUILD": t.SERVER_STATUS_BUILD,
    "ACTIVE": t.SERVER_STATUS_ACTIVE,
    "SHUTOFF": t.SERVER_STATUS_SHUTOFF,
    "ERROR": t.SERVER_STATUS_ERROR,
    "DELETED": t.SERVER_STATUS_DELETED,
}

# Notification event types.
CREATE_START, CREATE_END, CREATE_ERROR = "instance.create.start", "instance.create.end", "instance.create.error"
DELETE_START, DELETE_END = "instance.delete.start", "instance.delete.end"
POWER_UPDATE = "instance.power_update"
GUEST_MISSING = "instance.guest_missing"  # reconciliation found no guest for a settled server

# Instance action event names (Nova's, plus compute_spawn for the driver step).
EV_SCHEDULE = "conductor_schedule_and_build_instances"
EV_BUILD = "compute_build_and_run_instance"
EV_SPAWN = "compute_spawn"
EV_TERMINATE = "compute_terminate_instance"
EV_LOCAL_DELETE = "conductor_delete_instance"
EV_RECONCILE = "conductor_reconcile_guests"
EV_RESULT_OK, EV_RESULT_ERROR = "Success", "Error"
