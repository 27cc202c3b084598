"""`/admin/faults`: fault injection (only with STANDIN_ENABLE_FAULTS=1, else 404)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..deps import FaultsDep, SettingsDep
from ..errors import ApiError
from ..faults import FaultSpec, FaultState

__all__ = ["router"]


def _require_enabled(settings: SettingsDep) -> None:
    """Runs before body validation, so a disabled admin API is a 404 whatever is sent."""
    if not settings.enable_faults:
        raise ApiError(404, "fault injection is disabled (set STANDIN_ENABLE_FAULTS=1)",
                       code="not_found")  # fmt: skip


router = APIRouter(prefix="/admin/faults", dependencies=[Depends(_require_enabled)])


@router.get("")
async def get_faults(faults: FaultsDep) -> FaultState:
    return faults.state()


@router.post("")
async def set_fault(spec: FaultSpec, faults: FaultsDep) -> FaultState:
    return faults.set(spec)


@router.delete("")
async def clear_faults(faults: FaultsDep) -> FaultState:
    return faults.clear()
