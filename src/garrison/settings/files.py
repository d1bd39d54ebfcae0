"""The file storage section: where objects go, upload limits, signed links, thumbnails."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

MIB = 1024 * 1024


class FileSettings(BaseModel):
    backend: Literal["local", "s3"] = Field(
        default="local", description="local directory (development default) or S3-compatible"
    )
    local_dir: Path | None = Field(default=None, description="default <data_dir>/files")
    s3_bucket: str | None = None
    s3_prefix: str = Field(default="", description="key prefix inside the bucket")
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    replica: Literal["none", "local", "s3"] = Field(
        default="none", description="write every object to a second backend as well"
    )
    replica_local_dir: Path | None = Field(
        default=None, description="default <data_dir>/files-replica"
    )
    replica_s3_bucket: str | None = Field(default=None, description="default: s3_bucket")
    replica_s3_prefix: str = ""
    replica_s3_endpoint_url: str | None = Field(
        default=None, description="default: s3_endpoint_url"
    )
    repair_interval_seconds: float = Field(default=3600.0, gt=0)
    s3_presigned_redirects: bool = Field(
        default=False,
        description="downloads answer 302 to a presigned S3 link (bytes bypass the app)",
    )
    default_max_size: int = Field(
        default=10 * MIB, ge=1, description="bytes per file when a field sets no max_size"
    )
    max_upload_bytes: int = Field(
        default=1024 * MIB,
        ge=1,
        description="the request body limit of upload routes (other routes keep http's)",
    )
    user_quota_bytes: int | None = Field(
        default=None, ge=0, description="bytes of files each user may hold (none: no quota)"
    )
    max_parts: int = Field(default=100, ge=1, le=10_000, description="parts per upload request")
    max_data_bytes: int = Field(
        default=MIB, ge=1, description="bytes of the JSON 'data' part of a multipart write"
    )
    chunk_bytes: int = Field(
        default=8 * MIB, ge=5 * MIB, description="S3 multipart part size (memory per upload)"
    )
    signed_url_seconds: int = Field(default=300, ge=1, le=7 * 86_400)
    thumb_max_pixels: int = Field(
        default=40_000_000, ge=1, description="larger images get no thumbnail (bombs)"
    )
    thumb_max_source_bytes: int = Field(default=50 * MIB, ge=1)
    export_max_bytes: int = Field(
        default=256 * MIB, ge=0, description="file bytes a privacy export includes at most"
    )
    orphan_grace_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="objects with no row, and unattached uploads, live this long",
    )
    sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    sweep_batch_size: int = Field(default=500, ge=1, le=10_000)
