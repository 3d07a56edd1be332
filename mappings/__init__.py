"""Translation between each provider's raw objects and the canonical model.

Field paths and status maps live in data files (`<provider>.toml`), validated by
`mappings.spec`; what is more than a path lives in `mappings.transforms`. A connection may
override its provider's mapping in connector.toml under `[connections.NAME.mapping]`.
"""

from connector.mappings.mapper import MappedRecord, Mapper, deep_merge, get_path, load_mapping
from connector.mappings.spec import FieldSpec, MappingSpec, StreamSpec
from connector.mappings.transforms import TRANSFORMS, TransformContext, transform

__all__ = [
    "TRANSFORMS",
    "FieldSpec",
    "MappedRecord",
    "Mapper",
    "MappingSpec",
    "StreamSpec",
    "TransformContext",
    "deep_merge",
    "get_path",
    "load_mapping",
    "transform",
]
