"""Error responses of the Azure Files REST API, with the real service's codes, statuses and messages."""

from __future__ import annotations

from xml.sax.saxutils import escape

# code -> (HTTP status, message). Messages are the real service's texts (typo in InvalidResourceName
# included) so that bodies have the recorded lengths.
CATALOG: dict[str, tuple[int, str]] = {
    "AuthenticationFailed": (
        403,
        "Server failed to authenticate the request. Make sure the value of Authorization header is "
        "formed correctly including the signature.",
    ),
    "AuthorizationPermissionMismatch": (
        403,
        "This request is not authorized to perform this operation using this permission.",
    ),
    "AuthorizationResourceTypeMismatch": (
        403,
        "This request is not authorized to perform this operation using this resource type.",
    ),
    "AuthorizationServiceMismatch": (
        403,
        "This request is not authorized to perform this operation using this service.",
    ),
    "AuthorizationProtocolMismatch": (
        403,
        "This request is not authorized to perform this operation using this protocol.",
    ),
    "AuthorizationSourceIPMismatch": (
        403,
        "This request is not authorized to perform this operation using this source IP.",
    ),
    "NoAuthenticationInformation": (
        401,
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
    ),
    "ShareNotFound": (404, "The specified share does not exist."),
    "ShareAlreadyExists": (409, "The specified share already exists."),
    "ResourceNotFound": (404, "The specified resource does not exist."),
    "ParentNotFound": (404, "The specified parent path does not exist."),
    "ResourceAlreadyExists": (409, "The specified resource already exists."),
    "DirectoryNotEmpty": (409, "The specified directory is not empty."),
    "InvalidRange": (416, "The range specified is invalid for the current size of the resource."),
    "InvalidHeaderValue": (400, "The value for one of the HTTP headers is not in the correct format."),
    "MissingRequiredHeader": (400, "An HTTP header that's mandatory for this request is not specified."),
    "InvalidQueryParameterValue": (
        400,
        "Value for one of the query parameters specified in the request URI is invalid.",
    ),
    "OutOfRangeQueryParameterValue": (
        400,
        "One of the query parameters specified in the request URI is outside the permissible range.",
    ),
    "InvalidResourceName": (400, "The specifed resource name contains invalid characters."),
    "InvalidUri": (400, "The requested URI does not represent any resource on the server."),
    "InvalidMetadata": (400, "The metadata specified is invalid. It has characters that are not permitted."),
    "InvalidMd5": (
        400,
        "The MD5 value specified in the request is invalid. The MD5 value must be 128 bits and Base64-encoded.",
    ),
    "Md5Mismatch": (
        400,
        "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
    ),
    "InvalidInput": (400, "One of the request inputs is not valid."),
    "InvalidXmlDocument": (400, "XML specified is not syntactically valid."),
    "OutOfRangeInput": (400, "One of the request inputs is out of range."),
    "UnsupportedHttpVerb": (405, "The resource doesn't support specified Http Verb."),
    "RequestBodyTooLarge": (
        413,
        "The request body is too large and exceeds the maximum permissible limit.",
    ),
    "LeaseIdMissing": (
        412,
        "There is currently a lease on the file and no lease ID was specified in the request.",
    ),
    "LeaseIdMismatchWithFileOperation": (
        412,
        "The lease ID specified did not match the lease ID for the file.",
    ),
    "LeaseNotPresentWithFileOperation": (412, "There is currently no lease on the file."),
    "LeaseAlreadyPresent": (409, "There is already a lease present."),
    "LeaseNotPresentWithLeaseOperation": (
        409,
        "There is currently no lease on the file.",
    ),
    "LeaseIdMismatchWithLeaseOperation": (
        409,
        "The lease ID specified did not match the lease ID for the file.",
    ),
    "CannotVerifyCopySource": (400, "Could not verify the copy source within the specified time."),
    "NoPendingCopyOperation": (409, "There is currently no pending copy operation."),
    "FeatureNotSupported": (400, "This feature is not supported by the Azure Files emulator."),
    "InternalError": (500, "Server encountered an internal error. Please try again after some time."),
}


class StorageError(Exception):
    """A failed request; rendered as the service's XML error body and x-ms-error-code header."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        details: list[tuple[str, str]] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        default_status, default_message = CATALOG.get(code, (400, code))
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.details = details or []
        self.headers = headers or []
        super().__init__(f"{self.status} {code}: {self.message}")

    def body(self, request_id: str, time_iso: str) -> bytes:
        extra = "".join(f"<{name}>{escape(value)}</{name}>" if value else f"<{name} />" for name, value in self.details)
        text = (
            '<?xml version="1.0" encoding="utf-8"?><Error>'
            f"<Code>{escape(self.code)}</Code>"
            f"<Message>{escape(self.message)}\nRequestId:{request_id}\nTime:{time_iso}</Message>"
            f"{extra}</Error>"
        )
        # The service prefixes every XML body with a UTF-8 byte order mark.
        return "\ufeff".encode() + text.encode("utf-8")


def header_error(code: str, header: str, value: str | None = None, reason: str | None = None) -> StorageError:
    details = [("HeaderName", header)]
    if value is not None:
        details.append(("HeaderValue", value))
    if reason:
        details.append(("Reason", reason))
    return StorageError(code, details=details)


def query_error(name: str, value: str, reason: str = "", code: str = "InvalidQueryParameterValue") -> StorageError:
    return StorageError(
        code, details=[("QueryParameterName", name), ("QueryParameterValue", value), ("Reason", reason)]
    )
