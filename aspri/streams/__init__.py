"""The Faust-style stream runtime on Redis Streams: log, agents, tables, keys, embedded server."""

from aspri.streams.app import StreamApp
from aspri.streams.log import AppendConflict, Appended, EventLog
from aspri.streams.spec import Permanent
from aspri.streams.table import Table

__all__ = ["AppendConflict", "Appended", "EventLog", "Permanent", "StreamApp", "Table"]
