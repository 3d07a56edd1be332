"""Translation between each provider's raw objects and the canonical model.

Field paths and status maps live in data files (`<provider>.toml`), validated by
`mappings.spec`; what is more than a path lives in `mappings.transforms`. A connection may
override its provider's mapping in connector.toml under `[connections.NAME.mapping]`.
"""

from mappings.mapper import MappedRecord, Mapper, deep_merge, get_path, load_mapping
from mappings.spec import FieldSpec, MappingSpec, StreamSpec
from mappings.transforms import TRANSFORMS, TransformContext, transform

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
