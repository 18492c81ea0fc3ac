"""``strip_pretrained`` (projects/ccformer/utils/config.py): the one switch-off of pretrained weights used by
``init_avs_model`` and the analysis tools."""

import copy

from projects.ccformer.utils import strip_pretrained


def _cfg():
    return dict(
        backbone=dict(
            type='TimmPyramidBackbone', pretrained=True, init_cfg=dict(type='Pretrained', checkpoint='pvt_v2_b5.pth')
        ),
        audio_encoder=dict(
            type='VGGish',
            init_cfg=[dict(type='Pretrained', checkpoint='vggish.pth'), dict(type='Constant', val=0, layer='Linear')],
        ),
        head=dict(
            pretrained='x.pth',
            layers=[dict(init_cfg=dict(type='Pretrained', checkpoint='y.pth'))],
            init_cfg=dict(type='Xavier'),
        ),
        other=dict(pretrained=False, checkpoint_path=''),
    )


def test_strip_pretrained_removes_every_weight_reference():
    cfg = _cfg()
    before = copy.deepcopy(cfg)
    assert strip_pretrained(cfg) == 5
    assert cfg['backbone']['pretrained'] is False and cfg['backbone']['init_cfg'] is None
    assert cfg['audio_encoder']['init_cfg'] == [dict(type='Constant', val=0, layer='Linear')]
    assert cfg['head']['pretrained'] is None and cfg['head']['layers'][0]['init_cfg'] is None
    assert cfg['head']['init_cfg'] == dict(type='Xavier')  # non-pretrained inits stay
    assert cfg['other'] == before['other']  # already off: untouched
    assert strip_pretrained(cfg) == 0  # idempotent


def test_keep_frozen_leaves_frozen_modules_their_file():
    """``init_avs_model`` keeps the frozen VGGish's own file (a checkpoint may leave it out), and only that."""
    cfg = dict(
        model=dict(
            backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='pvt.pth')),
            audio_encoder=dict(
                type='VGGish',
                frozen=True,
                init_cfg=dict(type='Pretrained', checkpoint='vggish.pth'),
                inner=dict(pretrained='z.pth'),
            ),
        )
    )
    assert strip_pretrained(cfg, keep_frozen=True) == 2
    assert cfg['model']['backbone']['init_cfg'] is None
    assert cfg['model']['audio_encoder']['init_cfg'] == dict(type='Pretrained', checkpoint='vggish.pth')
    assert cfg['model']['audio_encoder']['inner']['pretrained'] is None  # a non-frozen child is switched off
    assert strip_pretrained(cfg) == 1 and cfg['model']['audio_encoder']['init_cfg'] is None
