"""Bounds of integer parameters that reach SQL: PostgreSQL's INTEGER and sane paging, refused with a 422."""

from __future__ import annotations

from typing import Any

from fastapi import Query

INT32 = 2**31 - 1
MAX_PAGE = 1_000_000

PAGE: Any = Query(default=1, ge=1, le=MAX_PAGE, description="1-based page number.")
SIZE: Any = Query(default=10, ge=1, le=1000, description="Results per page (at most 1000).")
REVISION: Any = Query(default=None, ge=1, le=INT32, description="A flow revision.")
