"""Typed errors of the registry domain.

Each carries the OCI error code it stands for; the HTTP layer owns the table
that turns a code into a status (`cargobay.http.errors`). The domain never
speaks HTTP, and the HTTP layer never invents codes of its own.
"""

from typing import Any, ClassVar


class RegistryError(Exception):
    """A failure the client caused or must know about, with its OCI error code."""

    code: ClassVar[str] = "UNKNOWN"
    default_message: ClassVar[str] = "unknown error"

    def __init__(self, message: str | None = None, detail: Any = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"
    default_message = "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"
    default_message = "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"
    default_message = "blob upload unknown to registry"


class RangeInvalid(RegistryError):
    """A chunk that does not start where the upload ends (out of order or overlapping)."""

    code = "RANGE_INVALID"
    default_message = "invalid content range"

    def __init__(self, message: str | None = None, *, uploaded: int = 0) -> None:
        super().__init__(message)
        self.uploaded = uploaded


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"
    default_message = "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code = "MANIFEST_BLOB_UNKNOWN"
    default_message = "manifest references a manifest or blob unknown to registry"


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"
    default_message = "manifest invalid"


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"
    default_message = "manifest unknown"


class NameInvalid(RegistryError):
    code = "NAME_INVALID"
    default_message = "invalid repository name"


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"
    default_message = "repository name not known to registry"


class TagInvalid(RegistryError):
    code = "TAG_INVALID"
    default_message = "manifest tag did not match URI"


class PaginationNumberInvalid(RegistryError):
    code = "PAGINATION_NUMBER_INVALID"
    default_message = "invalid number of results requested"


class ParameterInvalid(RegistryError):
    """A query parameter of cargobay's own endpoints (not of the OCI API) that makes no sense."""

    code = "PARAMETER_INVALID"
    default_message = "invalid parameter"


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"
    default_message = "provided length did not match content length"


class ManifestTooLarge(RegistryError):
    code = "SIZE_INVALID"
    default_message = "manifest too large"


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"
    default_message = "authentication required"


class Denied(RegistryError):
    code = "DENIED"
    default_message = "requested access to the resource is denied"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"
    default_message = "the operation is unsupported"


class DeleteDisabled(Unsupported):
    default_message = "deletion is disabled: set storage.delete.enabled to true"
