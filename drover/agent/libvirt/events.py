"""Libvirt's event loop in a daemon thread, and lifecycle-event → PowerState mapping.

libvirt delivers domain events only to processes that registered an event loop
implementation *before* opening the connection. We use libvirt's default
implementation (``virEventRegisterDefaultImpl``) driven by one daemon thread
(``virEventRunDefaultImpl`` in a loop) per process; callbacks run on that thread and
drivers hop back onto their asyncio loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from drover.agent.driver import PowerState

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and start its thread (once)."""
    global _thread
    import libvirt

    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:  # pragma: no cover - keep the loop alive
                    log.exception("libvirt event loop iteration failed")

        _thread = threading.Thread(target=run, name="libvirt-events", daemon=True)
        _thread.start()


def event_to_power_state(event: int, detail: int) -> PowerState | None:
    """Nova's lifecycle mapping; None for events that change no power state."""
    import libvirt

    if event in (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED):
        return PowerState.RUNNING
    if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
        return PowerState.PAUSED
    if event == libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED:
        return PowerState.SUSPENDED
    if event == libvirt.VIR_DOMAIN_EVENT_CRASHED:
        return PowerState.CRASHED
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        if detail in (libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED):
            return PowerState.CRASHED
        return PowerState.SHUTDOWN
    return None  # DEFINED, UNDEFINED, SHUTDOWN (in progress), ...


def domain_state_to_power_state(state: int, reason: int = 0) -> PowerState:
    """Nova's ``LIBVIRT_POWER_STATE`` table, plus: shut off because QEMU crashed or
    failed is CRASHED (as the STOPPED event said), not SHUTDOWN."""
    import libvirt

    if state == libvirt.VIR_DOMAIN_SHUTOFF and reason in (
        libvirt.VIR_DOMAIN_SHUTOFF_CRASHED,
        libvirt.VIR_DOMAIN_SHUTOFF_FAILED,
    ):
        return PowerState.CRASHED

    table: dict[int, PowerState] = {
        libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
        libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
        libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
        libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
        libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
        libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
        libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
    }
    return table.get(state, PowerState.NOSTATE)


def describe_event(event: int, detail: int) -> str:
    names: dict[int, Any] = {
        0: "DEFINED",
        1: "UNDEFINED",
        2: "STARTED",
        3: "SUSPENDED",
        4: "RESUMED",
        5: "STOPPED",
        6: "SHUTDOWN",
        7: "PMSUSPENDED",
        8: "CRASHED",
    }
    return f"{names.get(event, event)}/{detail}"
