"""What add_record's resources share: one of each per worker process."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import Settings
from common.storage.accounts import Accounts
from common.storage.records import RecordStore
from common.storage.uploads import UploadStore
from functions.add_record.drafts import Drafts
from functions.add_record.pace import PaceWatcher


@dataclass(frozen=True)
class WriteSide:
    settings: Settings
    accounts: Accounts
    records: RecordStore
    uploads: UploadStore
    drafts: Drafts
    pace: PaceWatcher
