"""Typed records: what a run, a compare run or a compile produced, as pydantic models.

A record's fields are its contract: a producer that writes a key the record does not declare, or a
value of the wrong type, fails where it writes it. Readers use attributes, or index by field name
as they would a dict (``summary["metrics"]``, ``summary.get("blessed")``); a name that is not a
field is a ``KeyError``, never a silent None. ``to_dict()`` is the JSON form (set fields only).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator

from pydantic import BaseModel, ConfigDict, ValidationError


class Record(BaseModel):
    """Base of lensflow's records (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def _field(self, key: str) -> str:
        if key not in type(self).model_fields:
            raise KeyError(f"{type(self).__name__} has no field {key!r}")
        return key

    def __getitem__(self, key: str) -> Any:
        if self._field(key) not in self.model_fields_set:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, self._field(key), value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.model_fields_set

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` for a field that may be unset; an unknown name is an error."""
        self._field(key)
        return getattr(self, key) if key in self.model_fields_set else default

    def keys(self) -> Iterator[str]:
        return iter(name for name in type(self).model_fields if name in self.model_fields_set)

    def __eq__(self, other: object) -> bool:
        """Equal to a record of the same values, or to a dict that validates to one (the form
        readers compared against before the record was typed)."""
        if isinstance(other, dict):
            try:
                other = type(self).model_validate(other)
            except ValidationError:
                return False
        return super().__eq__(other)

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)
