"""Parameter names of the CCFormer model before and after its blocks were built from mmdet / mmcv layers.

Checkpoints trained with the earlier layout (the model at commit c362b05, whose attention held
``in_proj_weight`` / ``out_proj`` directly and whose blocks named their norms ``norm1`` / ``norm``) load into the
current model unchanged: :class:`~projects.ccformer.models.segmentors.CCFormer` converts their keys when a state
dict is loaded (:func:`convert_ccformer_keys`); ``tools/model_converters/convert_ccformer_keys.py`` rewrites a
checkpoint file. The table, earlier name -> current name (``N`` a layer index; ``P`` one of ``in_proj_weight``,
``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``):

============================================================  =======================================================
earlier                                                        current
============================================================  =======================================================
``neck.{ave,vae}_layers.N.attn.P``                             ``neck.{ave,vae}_layers.N.cross_attn.attn.P``
``neck.{ave,vae}_layers.N.norm1`` / ``norm2``                  ``neck.{ave,vae}_layers.N.norms.0`` / ``norms.1``
``...iti_layers.N.intra_self_attn`` / ``intra_ffn``            ``...iti_layers.N.intra.self_attn`` / ``intra.ffn``
``...iti_layers.N.inter_cross_attn`` / ``inter_self_attn``    ``...iti_layers.N.inter.cross_attn`` / ``inter.self_attn``
``...iti_layers.N.inter_ffn``                                  ``...iti_layers.N.inter.ffn``
``...iti_layers.N.norms.{0,1,2,3,4}``                          ``...iti_layers.N.{intra.norms.0, intra.norms.1,
                                                               inter.norms.0, inter.norms.1, inter.norms.2}``
``...seg_head.fusions.N.sr`` / ``sr_norm``                     ``...seg_head.fusions.N.self_attn.sr`` / ``.norm``
``...seg_head.fusions.N.attn`` / ``norm`` (stride-4 light)     ``...seg_head.fusions.N.cross_attn`` / ``norms.0``
any other ``<attention>.P``                                    ``<attention>.attn.P`` (mmcv ``MultiheadAttention``)
============================================================  =======================================================
"""

import re
from typing import Dict, List, Tuple

_P = r'(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)'
_ITI_NORMS = {
    '0': 'intra.norms.0',
    '1': 'intra.norms.1',
    '2': 'inter.norms.0',
    '3': 'inter.norms.1',
    '4': 'inter.norms.2',
}

#: earlier -> current, applied in order (each rule leaves current names unchanged)
_TO_CURRENT: List[Tuple[str, object]] = [
    (r'((?:^|\.)(?:ave|vae)_layers\.\d+)\.attn\.', r'\1.cross_attn.'),
    (r'((?:^|\.)(?:ave|vae)_layers\.\d+)\.norm1\.', r'\1.norms.0.'),
    (r'((?:^|\.)(?:ave|vae)_layers\.\d+)\.norm2\.', r'\1.norms.1.'),
    (r'((?:^|\.)iti_layers\.\d+)\.(intra|inter)_(self_attn|cross_attn|ffn)\.', r'\1.\2.\3.'),
    (r'((?:^|\.)iti_layers\.\d+)\.norms\.(\d)\.', lambda m: f'{m.group(1)}.{_ITI_NORMS[m.group(2)]}.'),
    (r'((?:^|\.)fusions\.\d+)\.sr\.', r'\1.self_attn.sr.'),
    (r'((?:^|\.)fusions\.\d+)\.sr_norm\.', r'\1.self_attn.norm.'),
    (r'((?:^|\.)fusions\.\d+)\.attn\.', r'\1.cross_attn.'),
    (r'((?:^|\.)fusions\.\d+)\.norm\.', r'\1.norms.0.'),
    (r'(?<!\.attn)\.' + _P + '$', r'.attn.\1'),
]
_ITI_NORMS_BACK = {v: k for k, v in _ITI_NORMS.items()}
#: current -> earlier, applied in order
_TO_REFERENCE: List[Tuple[str, object]] = [
    (r'\.attn\.' + _P + '$', r'.\1'),
    (r'((?:^|\.)(?:ave|vae)_layers\.\d+)\.cross_attn\.', r'\1.attn.'),
    (r'((?:^|\.)(?:ave|vae)_layers\.\d+)\.norms\.0\.', r'\1.norm1.'),
    (r'((?:^|\.)(?:ave|vae)_layers\.\d+)\.norms\.1\.', r'\1.norm2.'),
    (
        r'((?:^|\.)iti_layers\.\d+)\.((?:intra|inter)\.norms\.\d)\.',
        lambda m: f'{m.group(1)}.norms.{_ITI_NORMS_BACK[m.group(2)]}.',
    ),
    (r'((?:^|\.)iti_layers\.\d+)\.(intra|inter)\.(self_attn|cross_attn|ffn)\.', r'\1.\2_\3.'),
    (r'((?:^|\.)fusions\.\d+)\.self_attn\.sr\.', r'\1.sr.'),
    (r'((?:^|\.)fusions\.\d+)\.self_attn\.norm\.', r'\1.sr_norm.'),
]


def _apply(name: str, rules) -> str:
    for pattern, repl in rules:
        name = re.sub(pattern, repl, name)
    return name


def to_current_name(name: str) -> str:
    """A parameter / buffer name of the earlier layout in the current one (current names are returned as is)."""
    return _apply(name, _TO_CURRENT)


def to_reference_name(name: str, light_fine_level: bool = True) -> str:
    """A current parameter name in the earlier layout (the inverse of :func:`to_current_name`).

    ``light_fine_level``: the stride-4 FPN block ``seg_head.fusions.0`` is the light audio block (the default
    ``fine_level='light'``), whose attention and norm were named ``attn`` / ``norm``.
    """
    name = _apply(name, _TO_REFERENCE)
    if light_fine_level:
        name = re.sub(r'((?:^|\.)seg_head\.fusions\.0)\.cross_attn\.', r'\1.attn.', name)
        name = re.sub(r'((?:^|\.)seg_head\.fusions\.0)\.norms\.0\.', r'\1.norm.', name)
    return name


def convert_ccformer_keys(state_dict: Dict[str, object], prefix: str = '') -> Dict[str, object]:
    """Rename, in place, the keys of the model's ``neck.`` and ``decode_head.`` under ``prefix`` that have the
    earlier layout (backbones and losses are left alone); returns ``state_dict``."""
    parts = (prefix + 'neck.', prefix + 'decode_head.')
    for key in list(state_dict):
        if not key.startswith(parts):
            continue
        new = prefix + to_current_name(key[len(prefix) :])
        if new != key:
            if new in state_dict:
                raise KeyError(f'checkpoint holds both {key!r} (earlier layout) and {new!r}; keep one of them')
            state_dict[new] = state_dict.pop(key)
    return state_dict
