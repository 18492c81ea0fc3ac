# CCFormer with ResNet-50 (torchvision ImageNet weights; mmdet's ResNet has the torchvision key layout).
#   pretrained/resnet50-0676ba61.pth  https://download.pytorch.org/models/resnet50-0676ba61.pth
_base_ = ['./ccformer_pvtv2-b5.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdet.ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/resnet50-0676ba61.pth'),
    ),
    neck=dict(in_channels=[256, 512, 1024, 2048]),
)
