"""Users and groups of a POSIX system (its own databases, or `passwd` and `group` files exported
from another one), and the identities a file's owner, group and mode bits let read it."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from elastic_ingest.connectors.access_control import (
    EVERYONE,
    User,
    group_identity,
    user_identity,
)


class AccountsError(ValueError):
    """A passwd or group file that cannot be read, with the file and line named."""


@dataclass
class Accounts:
    users: dict[int, str] = field(default_factory=dict)  # uid -> name
    ids: dict[str, tuple[int, int]] = field(default_factory=dict)  # user name -> (uid, gid)
    groups: dict[int, str] = field(default_factory=dict)  # gid -> name
    members: dict[int, set[str]] = field(default_factory=dict)  # gid -> member user names

    @classmethod
    def of_system(cls) -> Accounts:
        """This machine's users and groups, through its name service (files, LDAP, ...)."""
        accounts = cls()
        for user in pwd.getpwall():
            accounts._add_user(user.pw_name, user.pw_uid, user.pw_gid)
        for group in grp.getgrall():
            accounts._add_group(group.gr_name, group.gr_gid, group.gr_mem)
        return accounts

    @classmethod
    def from_files(cls, passwd: str, group: str) -> Accounts:
        """Accounts from files in the format of /etc/passwd and /etc/group."""
        accounts = cls()
        for where, parts in _records(passwd, 4):
            accounts._add_user(parts[0], _number(parts[2], where), _number(parts[3], where))
        for where, parts in _records(group, 3):
            members = parts[3].split(",") if len(parts) > 3 and parts[3] else []
            accounts._add_group(parts[0], _number(parts[2], where), members)
        return accounts

    def _add_user(self, name: str, uid: int, gid: int) -> None:
        self.users.setdefault(uid, name)
        self.ids[name] = (uid, gid)

    def _add_group(self, name: str, gid: int, members: list[str]) -> None:
        self.groups.setdefault(gid, name)
        self.members.setdefault(gid, set()).update(member.strip() for member in members)

    def file_identities(self, stat: os.stat_result) -> list[str]:
        """Who may read a file by its mode bits: its owner, its group, everyone. An id with no
        name here stays a number (it matches no user: nobody but a superuser sees the file)."""
        found = []
        if stat.st_mode & 0o400:
            found.append(user_identity(self.users.get(stat.st_uid, stat.st_uid)))
        if stat.st_mode & 0o040:
            found.append(group_identity(self.groups.get(stat.st_gid, stat.st_gid)))
        if stat.st_mode & 0o004:
            found.append(EVERYONE)
        return found

    def users_with_groups(self) -> Iterator[User]:
        """Every user, with their own identity, their groups' (primary and member of), and
        `everyone`."""
        for name, (uid, primary) in sorted(self.ids.items()):
            gids = {gid for gid, members in self.members.items() if name in members}
            gids.add(primary)
            groups = sorted(group_identity(self.groups.get(gid, gid)) for gid in gids)
            yield User(
                id=name,
                identity={"username": name, "uid": uid},
                access_control=[user_identity(name), *groups, EVERYONE],
            )


def _records(path: str, fields: int) -> Iterator[tuple[str, list[str]]]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise AccountsError(f"cannot read {path}: {error.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < fields or not parts[0]:
            raise AccountsError(f"{path}:{number}: expected name:password:id:... ({line[:60]!r})")
        yield f"{path}:{number}", parts


def _number(text: str, where: str) -> int:
    if not text.strip().isdigit():
        raise AccountsError(f"{where}: expected a numeric id, got {text!r}")
    return int(text)
