"""Authorization as data: one table from each ApiService RPC (and a few finer actions) to a rule.

The defaults are Nova's secure-RBAC ones (project-scoped reader / member, and admin). An operator
overrides any entry with a TOML or YAML file of ``action = "rule"`` pairs (``auth.policy_file``);
`drover policy list` prints the effective table.

Rules look only at the caller's roles: ``admin`` ⊃ ``member`` ⊃ ``reader``. Which *things* a caller
may see is the project check the servicer applies (another project's server, group or image is
NOT_FOUND unless the caller is an admin), so a refused action never tells whether its target exists.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# rule → the roles any one of which satisfies it
RULES: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin"}),
    "project_member": frozenset({"admin", "member"}),
    "project_reader": frozenset({"admin", "member", "reader"}),
    "authenticated": frozenset(),  # any valid token
    "nobody": frozenset(),
}


@dataclass(frozen=True)
class Action:
    default: str
    description: str


ACTIONS: dict[str, Action] = {
    "CreateServer": Action("project_member", "create servers in one's project"),
    "GetServer": Action("project_reader", "show a server of one's project"),
    "ListServers": Action("project_reader", "list the servers of one's project"),
    "ListServers:all_projects": Action("admin", "list the servers of every project (all_projects)"),
    "ListServers:include_deleted": Action("admin", "list deleted servers (include_deleted, or status DELETED)"),
    "DeleteServer": Action("project_member", "delete a server of one's project"),
    "WatchServer": Action("project_reader", "watch a server of one's project"),
    "ListServerActions": Action("project_reader", "list a server's actions and events"),
    "GetConsoleOutput": Action("project_reader", "read a server's console log"),
    "ListFlavors": Action("authenticated", "list flavors"),
    "GetFlavor": Action("authenticated", "show a flavor"),
    "CreateFlavor": Action("admin", "create a flavor"),
    "CreateImage": Action("admin", "register a file of the API host (in an image directory) as an image"),
    "UploadImage": Action("project_member", "upload an image's bytes"),
    "ListImages": Action("authenticated", "list images"),
    "GetImage": Action("authenticated", "show an image"),
    "DeleteImage": Action("project_member", "delete an image one's project owns"),
    "DeleteImage:any_owner": Action("admin", "delete an image of any project"),
    "CreateServerGroup": Action("project_member", "create a server group"),
    "GetServerGroup": Action("project_reader", "show a server group of one's project"),
    "ListServerGroups": Action("project_reader", "list the server groups of one's project"),
    "ListServerGroups:all_projects": Action("admin", "list the server groups of every project (all_projects)"),
    "DeleteServerGroup": Action("project_member", "delete a server group of one's project"),
    "ListNetworks": Action("project_reader", "list networks"),
    "ListHosts": Action("admin", "list compute hosts and their usage"),
}


class PolicyError(ValueError):
    """The policy file names an unknown action or rule."""


class Policy:
    def __init__(self, overrides: dict[str, str] | None = None, source: str = "") -> None:
        self.source = source
        self.rules = {name: a.default for name, a in ACTIONS.items()}
        for name, rule in (overrides or {}).items():
            if name not in ACTIONS:
                raise PolicyError(f"{source or 'policy'}: unknown action {name!r}")
            if not isinstance(rule, str) or rule not in RULES:
                raise PolicyError(f"{source or 'policy'}: {name}: rule must be one of {', '.join(RULES)}")
            self.rules[name] = rule
        # Precomputed per action: the roles that pass (None: any authenticated caller).
        self._allowed: dict[str, frozenset[str] | None] = {
            name: None if rule == "authenticated" else RULES[rule] for name, rule in self.rules.items()}

    def allows(self, action: str, roles: frozenset[str]) -> bool:
        allowed = self._allowed[action]
        return allowed is None or not allowed.isdisjoint(roles)

    def table(self) -> list[dict[str, Any]]:
        return [{"action": name, "rule": self.rules[name], "default": a.default,
                 "overridden": self.rules[name] != a.default, "description": a.description}
                for name, a in ACTIONS.items()]


def load(path: str) -> Policy:
    """The defaults, overridden by ``path`` (TOML, or YAML by its .yaml/.yml suffix) when given."""
    if not path:
        return Policy()
    file = Path(path).expanduser()
    text = file.read_text()
    if file.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = tomllib.loads(text)
    if not isinstance(data, dict):
        raise PolicyError(f"{file}: expected a table of action = rule")
    return Policy(data, source=str(file))
