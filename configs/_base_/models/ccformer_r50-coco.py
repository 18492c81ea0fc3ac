# CCFormer with the ResNet-50 of an mmdet COCO detector, as the paper pretrains it (ccformer_r50.py loads torchvision's
# ImageNet weights instead). The backbone is read from the detector checkpoint by prefix (mmengine Pretrained init,
# prefix='backbone.'); the detector's neck and heads are ignored. Fetch the file yourself (mmdet model zoo, Mask R-CNN
# R-50-FPN 1x COCO; the backbone.* weights of Faster R-CNN R-50-FPN load the same way):
#   pretrained/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth
#   https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth
# Read weights-only like every checkpoint (projects/ccformer/engine/safe_checkpoint.py): a file holding other
# objects is refused, naming them and the opt-in.
_base_ = ['./ccformer_r50.py']
model = dict(
    backbone=dict(
        init_cfg=dict(checkpoint='pretrained/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth', prefix='backbone.')
    )
)
