"""Handlers for the routes a migration into a company needs: pipelines, stages, fields, lead labels, notes.

Thin: parse the request, call :mod:`~crmsync.sandbox.structure` or
:mod:`~crmsync.sandbox.notes`, render. The route table (with the spec's token costs) is in
:mod:`crmsync.sandbox.api`, which imports this module lazily.

Example::

    >>> from crmsync.sandbox.api import route
    >>> route("POST", "v2", "/stages")[0].handler is stage_create
    True
"""

from __future__ import annotations

from . import notes as nt
from . import render
from . import structure as st
from .api import ApiError, Call, _int, _rfc3339, _v1_page, _v1_pagination, _write, bad_request, error_body, ok
from .store import Invalid, NotFound


# -- pipelines and stages (v2) ---------------------------------------------------------------------
def _catalog_get(call: Call, kind: str) -> dict:
    cat = call.store.catalog
    obj = cat.pipeline(int(call.params[0])) if kind == "pipeline" else cat.stage(int(call.params[0]))
    if obj is None:
        raise ApiError(404, error_body(f"{kind.capitalize()} not found", "Object was not found."))
    return obj


def pipeline_get(call):
    return ok(render.v2_pipeline(_catalog_get(call, "pipeline")))


def pipeline_create(call):
    return ok(render.v2_pipeline(_write(st.create_pipeline, call.store, call.body, call.user_id)))


def pipeline_update(call):
    return ok(render.v2_pipeline(_write(st.update_pipeline, call.store, int(call.params[0]), call.body, call.user_id)))


def _deleted(ident) -> tuple[int, dict]:
    return 200, {"success": True, "data": {"id": ident}}


def pipeline_delete(call):
    return _deleted(_write(st.delete_pipeline, call.store, int(call.params[0]), call.user_id)["id"])


def stage_get(call):
    return ok(render.v2_stage(_catalog_get(call, "stage")))


def stage_create(call):
    return ok(render.v2_stage(_write(st.create_stage, call.store, call.body, call.user_id)))


def stage_update(call):
    return ok(render.v2_stage(_write(st.update_stage, call.store, int(call.params[0]), call.body, call.user_id)))


def stage_delete(call):
    return _deleted(_write(st.delete_stage, call.store, int(call.params[0]), call.user_id)["id"])


# -- custom fields ---------------------------------------------------------------------------------
def _field_type(value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise Invalid(f"Parameter 'field_type' must be one of {', '.join(allowed)}")


def field_create_v2(entity: str):
    def handler(call):
        b = call.body
        _write(st.check_body, b, st.V2_FIELD_BODY, ("field_name", "field_type"))
        _write(_field_type, b["field_type"], st.V2_FIELD_TYPES)
        if len(b["field_name"]) > 255:
            raise bad_request("Parameter 'field_name' must be at most 255 characters")
        f = _write(
            st.create_field,
            call.store,
            entity,
            b["field_name"],
            b["field_type"],
            b.get("options"),
            call.user_id,
            b.get("description"),
        )
        return ok(render.v2_field(f))

    return handler


def field_create_v1(entity: str):
    def handler(call):
        b = call.body
        _write(st.check_body, b, st.V1_FIELD_BODY, ("name", "field_type"))
        _write(_field_type, b["field_type"], st.V1_FIELD_TYPES)
        f = _write(st.create_field, call.store, entity, b["name"], b["field_type"], b.get("options"), call.user_id)
        return ok(render.v1_field(f, len(call.store.catalog.live_fields(entity)) - 1))

    return handler


def _field_or_404(call: Call, entity: str) -> dict:
    f = next((x for x in call.store.catalog.live_fields(entity) if x["code"] == call.params[0]), None)
    if f is None:
        raise ApiError(404, error_body("Field not found", "Object was not found."))
    return f


def field_get_v2(entity: str):
    def handler(call):
        return ok(render.v2_field(_field_or_404(call, entity)))

    return handler


def field_delete_v2(entity: str):
    def handler(call):
        f = _write(st.delete_field, call.store, entity, _field_or_404(call, entity)["code"], call.user_id)
        return ok(render.v2_field(f))

    return handler


# -- lead labels (v1) ------------------------------------------------------------------------------
def _label_call(fn, *args):
    try:
        return fn(*args)
    except NotFound:
        raise ApiError(404, error_body("Lead label not found", "Object was not found.")) from None
    except Invalid as exc:
        raise bad_request(str(exc)) from None


def _label_out(label: dict) -> dict:
    return {
        **label,
        "add_time": render.lead_time(label["add_time"]),
        "update_time": render.lead_time(label["update_time"]),
    }


def lead_label_create(call):
    return ok(_label_out(_label_call(st.create_lead_label, call.store, call.body, call.user_id)))


def lead_label_update(call):
    return ok(_label_out(_label_call(st.update_lead_label, call.store, call.params[0], call.body, call.user_id)))


def lead_label_delete(call):
    return _deleted(_label_call(st.delete_lead_label, call.store, call.params[0], call.user_id)["id"])


# -- notes (v1) ------------------------------------------------------------------------------------
def _note_call(fn, *args):
    try:
        return fn(*args)
    except NotFound:
        raise ApiError(404, error_body("Note not found", "Object was not found.")) from None
    except Invalid as exc:
        raise bad_request(str(exc)) from None


def _date(q: dict, name: str) -> int | None:
    v = q.get(name)
    if not v:
        return None
    try:
        return nt.parse_v1_time(f"{v} 00:00:00", name)
    except Invalid:
        raise bad_request(f"Parameter '{name}' must be YYYY-MM-DD") from None


def _note_sort(raw: str | None) -> list[tuple[str, bool]]:
    out = []
    for part in (raw or "").split(","):
        words = part.split()
        if not words:
            continue
        if (
            words[0] not in nt.SORTABLE
            or len(words) > 2
            or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC"))
        ):
            raise bad_request(f"Parameter 'sort' supports {', '.join(nt.SORTABLE)} with ASC or DESC")
        out.append((words[0], len(words) == 2 and words[1].upper() == "DESC"))
    return out


def notes_list(call):
    q = call.query
    start, limit = _v1_page(q)
    filters: dict = {}
    for name in ("user_id", "deal_id", "person_id", "org_id", "project_id", "task_id"):
        v = _int(q, name)
        if v is not None:
            filters[name] = v
    if q.get("lead_id"):
        filters["lead_id"] = q["lead_id"]
    for flag in nt.PIN_TARGET:
        if q.get(flag):
            if q[flag] not in ("0", "1"):
                raise bad_request(f"Parameter '{flag}' must be 0 or 1")
            filters[flag] = q[flag] == "1"
    lo, hi = _date(q, "start_date"), _date(q, "end_date")
    filters["add_from"] = lo
    filters["add_to"] = None if hi is None else hi + 86400  # end_date is inclusive
    filters["updated_since"] = _rfc3339(q, "updated_since")
    found = nt.list_notes(call.store, filters, _note_sort(q.get("sort")))
    page = found[start : start + limit]
    data = [nt.render_note(n, call.store, call.user_id) for n in page]
    return ok(data, {"pagination": _v1_pagination(start, limit, start + limit < len(found))})


def note_create(call):
    return ok(nt.render_note(_note_call(nt.create_note, call.store, call.body, call.user_id), call.store, call.user_id))


def note_get(call):
    return ok(nt.render_note(_note_call(nt.get_note, call.store, int(call.params[0])), call.store, call.user_id))


def note_update(call):
    note = _note_call(nt.update_note, call.store, int(call.params[0]), call.body, call.user_id)
    return ok(nt.render_note(note, call.store, call.user_id))


def note_delete(call):
    _note_call(nt.delete_note, call.store, int(call.params[0]), call.user_id)
    return 200, {"success": True, "data": True}
