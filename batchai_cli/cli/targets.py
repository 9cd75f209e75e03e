"""Turn the 'Resource Id' arguments of a command (names or --ids) into resource ids, as az does."""

from __future__ import annotations

from batchai_cli import ids
from batchai_cli.errors import UsageError
from batchai_cli.ids import ResourceId


def resolve_targets(
    app, kind: str, id_values: tuple[str, ...], resource_group: str | None, names: list[tuple[str, str | None, str]]
) -> list[ResourceId]:
    """Resources named by --ids, or by -g plus `names`: (kind, value, flag) from the top down.

    --ids wins over names (which may have come from configured defaults). Without --ids every
    name is required: `(--name | --ids) are required`, as az says.
    """
    from batchai_cli.cli.options import split_ids

    id_list = split_ids(id_values)
    if id_list:
        targets = [ids.parse(text, expect=kind) for text in id_list]
        subscription = app.session.subscription
        for target in targets:
            if target.subscription.lower() != subscription.lower():
                raise UsageError(
                    f"The id '{target}' is in subscription '{target.subscription}', not in this one "
                    f"('{subscription}').",
                    hint="Check the id, or switch with 'batchai configure --subscription <id>'.",
                )
        return targets
    if not resource_group:
        raise UsageError(
            "(--resource-group | --ids) are required",
            hint="(or set a default: batchai configure --defaults group=<name>).",
        )
    ids.check_resource_group(resource_group)
    for path_kind, value, flag in names:
        if not value:
            raise UsageError(f"({flag} | --ids) are required")
        ids.check_name(value, path_kind)
    rid = ids.workspace_id(app.session.subscription, resource_group, names[0][1])
    for path_kind, value, _flag in names[1:]:
        rid = rid.child(path_kind, value)
    return [rid]


def workspace_target(app, resource_group: str | None, workspace: str | None) -> ResourceId:
    """The workspace named by -g/-w (list commands)."""
    (rid,) = resolve_targets(app, "workspace", (), resource_group, [("workspace", workspace, "--workspace")])
    return rid


def one_or_many(results: list):
    """az's answer for --ids: one object for one id, a list for several."""
    return results[0] if len(results) == 1 else results
