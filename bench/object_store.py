"""A fault campaign's object store: SeaweedFS's S3 gateway on loopback, started as `seqforge stack up` starts it, with
a switch in front (`bench.relay.Switch`) that a fault turns off once Ray has registered a chosen checkpoint and on
again when the stage has ended."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from bench.relay import Switch
from bench.servers import free_ports
from seqforge.stack.config import SeaweedCfg, StackCfg, credentials
from seqforge.stack.processes import stop
from seqforge.stack.services import s3_client, start_seaweedfs

SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints, rewritten at each


class ObjectStore:
    """SeaweedFS with its data and log in `folder`, on free ports; the stage reaches it through the switch."""

    def __init__(self, folder: Path) -> None:
        names = [name for name in SeaweedCfg.model_fields if name.endswith("_port")]
        *ports, s3_port = free_ports(len(names) + 1)
        sw = SeaweedCfg(**dict(zip(names, ports, strict=True)))
        self.cfg = StackCfg(dir=folder, seaweedfs=sw, s3={"port": s3_port, "bucket": "chaos"})
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        self.creds = credentials(self.cfg)
        try:
            start_seaweedfs(self.cfg, self.creds)
        except BaseException:  # it may be running, not answering: it goes too
            stop(self.cfg, "seaweedfs")
            raise
        self.client = s3_client(self.cfg, self.creds)  # straight to the store: the campaign's own reads
        self.switch = Switch(self.cfg.s3.port)

    def env(self, prefix: str) -> dict[str, str]:
        """What a train stage needs to keep its Ray run under `prefix` in the bucket, through the switch."""
        s3 = self.cfg.s3
        return {
            "AWS_ACCESS_KEY_ID": self.creds["access_key"],
            "AWS_SECRET_ACCESS_KEY": self.creds["secret_key"],
            "AWS_DEFAULT_REGION": s3.region,
            "SEQFORGE_RAY_STORAGE": f"s3://{s3.bucket}/{prefix}?endpoint_override=127.0.0.1:{self.switch.port}"
            f"&scheme=http&region={s3.region}",
        }

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.cfg.s3.bucket, Prefix=f"{prefix}/")
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def checkpoints(self, prefix: str) -> int:
        """How many checkpoints Ray has registered in the run under `prefix` (0 before its first)."""
        snapshot = next((k for k in self.keys(prefix) if k.endswith(f"/{SNAPSHOT}")), None)
        if snapshot is None:
            return 0
        body = self.client.get_object(Bucket=self.cfg.s3.bucket, Key=snapshot)["Body"].read()
        return json.loads(body)["current_report_index"]

    def _checkpoints_now(self, prefix: str) -> int:
        """`checkpoints`, or 0 while the store or the snapshot cannot be read (tried again half a second later)."""
        try:
            return self.checkpoints(prefix)
        except (BotoCoreError, ClientError, ValueError, KeyError):
            return 0

    def outage(self, prefix: str, after: int, ended: threading.Event) -> bool:
        """Off from the moment Ray has registered `after` checkpoints under `prefix` until the stage has ended
        (`ended`), unless it ends first; whether it went off."""
        while self._checkpoints_now(prefix) < after:
            if ended.wait(0.5):
                return False
        self.switch.cut()
        ended.wait()
        self.switch.restore()
        return True

    def mirror(self, prefix: str, folder: Path) -> None:
        """Every object under `prefix` as a file under `folder`, at the same relative path (for the checks)."""
        for key in self.keys(prefix):
            if key.endswith("/"):  # a folder's marker object, not a file
                continue
            path = folder / key.removeprefix(f"{prefix}/")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.cfg.s3.bucket, key, str(path))

    def close(self) -> None:
        self.switch.close()
        stop(self.cfg, "seaweedfs")
