"""Why an input cannot become a digit: each error carries an API code and an HTTP status."""

from __future__ import annotations


class ImageError(ValueError):
    """An input that cannot be turned into a digit; code and status say why."""

    code = "invalid_image"
    status = 422

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class UnsupportedFormat(ImageError):
    code = "unsupported_media_type"
    status = 415


class ImageTooLarge(ImageError):
    code = "image_too_large"
    status = 413


class EmptyFile(ImageError):
    code = "empty_file"


class NotAnImage(ImageError):
    code = "not_an_image"


class TruncatedImage(ImageError):
    code = "truncated_image"


class NoDigitFound(ImageError):
    code = "no_digit_found"
    status = 422
