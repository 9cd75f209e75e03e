"""ARM-style resource ids and the Batch AI name rules.

    /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.BatchAI/workspaces/{ws}
        /experiments/{exp}/jobs/{job}   |   /clusters/{c}   |   /fileServers/{fs}

ARM names are case-insensitive; ids keep the casing the user gave and compare case-insensitively.
"""

from __future__ import annotations

from batchai_cli.errors import UsageError

PROVIDER = "Microsoft.BatchAI"
# The service rule is ^[-\w_]+$ with .NET's Unicode \w; ASCII keeps names safe in paths and URLs.
# Checked with sets rather than regular expressions: compiling those costs start-up time.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_GROUP_CHARS = _NAME_CHARS | frozenset(".()")


def _matches(value: object, chars: frozenset, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest and all(c in chars for c in value)


# Child collections under a workspace, in id order, and the resource type az prints for each.
KINDS = {
    "workspace": ("workspaces", "Microsoft.BatchAI/workspaces"),
    "experiment": ("experiments", "Microsoft.BatchAI/workspaces/experiments"),
    "job": ("jobs", "Microsoft.BatchAI/workspaces/experiments/jobs"),
    "cluster": ("clusters", "Microsoft.BatchAI/workspaces/clusters"),
    "file-server": ("fileServers", "Microsoft.BatchAI/workspaces/fileServers"),
}
_SEGMENT_KIND = {segment.lower(): kind for kind, (segment, _) in KINDS.items()}


def check_name(name: str, what: str = "resource") -> str:
    if not _matches(name, _NAME_CHARS, 64):
        raise UsageError(
            f"Invalid {what} name '{name}'.",
            hint="Names are 1-64 characters: letters, digits, '-' and '_'.",
        )
    return name


def check_resource_group(name: str) -> str:
    if not _matches(name, _GROUP_CHARS, 90) or name.endswith("."):
        raise UsageError(
            f"Invalid resource group name '{name}'.",
            hint="Resource group names are 1-90 characters: letters, digits, '-', '_', '.', '(' and ')',"
            " not ending in '.'.",
        )
    return name


def check_subscription(value: str) -> str:
    if not _matches(value, _NAME_CHARS, 64):
        raise UsageError(f"Invalid subscription id '{value}'.", hint="Use letters, digits and '-' only.")
    return value


class ResourceId:
    """A parsed Batch AI resource id. `names` holds (kind, name) pairs along the path, e.g.
    (("workspace", "ws"), ("experiment", "e"), ("job", "j")). Immutable and hashable."""

    __slots__ = ("names", "resource_group", "subscription")

    def __init__(self, subscription: str, resource_group: str, names: tuple[tuple[str, str], ...]):
        object.__setattr__(self, "subscription", subscription)
        object.__setattr__(self, "resource_group", resource_group)
        object.__setattr__(self, "names", tuple(names))

    def __setattr__(self, name, value):
        raise AttributeError("ResourceId is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceId) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"ResourceId({str(self)!r})"

    @property
    def kind(self) -> str:
        return self.names[-1][0]

    @property
    def name(self) -> str:
        return self.names[-1][1]

    def get(self, kind: str) -> str | None:
        return dict(self.names).get(kind)

    @property
    def parent(self) -> ResourceId | None:
        if len(self.names) == 1:
            return None
        return ResourceId(self.subscription, self.resource_group, self.names[:-1])

    def child(self, kind: str, name: str) -> ResourceId:
        return ResourceId(self.subscription, self.resource_group, (*self.names, (kind, name)))

    def __str__(self) -> str:
        path = "".join(f"/{KINDS[kind][0]}/{name}" for kind, name in self.names)
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/{PROVIDER}{path}"

    @property
    def key(self) -> str:
        """The id in a canonical case, for lookups (ARM ids compare case-insensitively)."""
        return str(self).lower()

    @property
    def type(self) -> str:
        return KINDS[self.kind][1]


def workspace_id(subscription: str, resource_group: str, workspace: str) -> ResourceId:
    return ResourceId(subscription, resource_group, (("workspace", workspace),))


def parse(text: str, *, expect: str | None = None) -> ResourceId:
    """Parse a Batch AI resource id; `expect` names the kind the caller needs (e.g. "experiment")."""
    hint = (
        "A Batch AI id looks like /subscriptions/<sub>/resourceGroups/<group>/providers/"
        "Microsoft.BatchAI/workspaces/<workspace>[/experiments/<experiment>[/jobs/<job>]]."
    )
    parts = [p for p in (text or "").strip().split("/") if p]
    if (
        len(parts) < 8
        or len(parts) % 2
        or parts[0].lower() != "subscriptions"
        or parts[2].lower() != "resourcegroups"
        or parts[4].lower() != "providers"
        or parts[5].lower() != PROVIDER.lower()
    ):
        raise UsageError(f"'{text}' is not a valid Batch AI resource id.", hint=hint)
    names: list[tuple[str, str]] = []
    for segment, name in zip(parts[6::2], parts[7::2], strict=True):
        kind = _SEGMENT_KIND.get(segment.lower())
        if kind is None:
            raise UsageError(f"'{text}' is not a valid Batch AI resource id: unknown '{segment}'.", hint=hint)
        names.append((kind, check_name(name, kind)))
    order = [kind for kind, _ in names]
    valid_paths = (
        ["workspace"],
        ["workspace", "experiment"],
        ["workspace", "experiment", "job"],
        ["workspace", "cluster"],
        ["workspace", "file-server"],
    )
    if order not in valid_paths:
        raise UsageError(f"'{text}' is not a valid Batch AI resource id.", hint=hint)
    result = ResourceId(check_subscription(parts[1]), check_resource_group(parts[3]), tuple(names))
    if expect and result.kind != expect:
        raise UsageError(f"'{text}' is the id of a {result.kind}, not of a {expect}.")
    return result


def resource_group_of(text: str) -> str | None:
    """The resource group named in any ARM id (Batch AI or not), as az adds `resourceGroup` to output."""
    parts = (text or "").split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups" and parts[index + 1]:
            return parts[index + 1]
    return None
