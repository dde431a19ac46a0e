"""Errors raised by the backbone registry."""


class WeightsUnavailable(RuntimeError):
    """Pretrained weights cannot be obtained offline; the message names the file and directory."""

    def __init__(self, backbone: str, file_name: str, directory: str, hint: str = ""):
        self.backbone = backbone
        self.file_name = file_name
        self.directory = directory
        message = (f"ImageNet weights for backbone '{backbone}' are not available offline: "
                   f"place the file '{file_name}' in the directory '{directory}'")
        super().__init__(f"{message} ({hint})" if hint else message)
