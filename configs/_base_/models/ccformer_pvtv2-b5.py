# CCFormer with PVT-v2-b5 (ImageNet-1k, official whai362 release) and VGGish (AudioSet), d = 256.
# Put the checkpoints under pretrained/ (README, "Pretrained weights"):
#   pretrained/pvt_v2_b5.pth        https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth
#   pretrained/vggish-10086976.pth  https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth
# The backbone is timm's PVT-v2-b5 (SDPA attention) loading the official file through timm's key converter;
# mmdet's implementation loads the same file too (its attention is slower):
#   backbone=dict(_delete_=True, type='mmdet.PyramidVisionTransformerV2', embed_dims=64, num_layers=[3, 6, 40, 3],
#                 mlp_ratios=[4, 4, 4, 4], init_cfg=dict(type='Pretrained', checkpoint='pretrained/pvt_v2_b5.pth'))
data_preprocessor = dict(
    type='AVSDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255,
)
embed_dims = 256
model = dict(
    type='CCFormer',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='TimmPyramidBackbone',
        model_name='pvt_v2_b5',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pvt_v2_b5.pth'),
    ),
    audio_encoder=dict(
        type='VGGish', frozen=True, init_cfg=dict(type='Pretrained', checkpoint='pretrained/vggish-10086976.pth')
    ),
    neck=dict(
        type='EIM',
        in_channels=[64, 128, 320, 512],
        audio_channels=128,
        embed_dims=embed_dims,
        num_heads=8,
        ffn_dims=2048,
        dropout=0.0,
        use_eim=True,
        use_ave=True,
        use_vae=True,
        ave_scales=(1, 2, 3),  # strides 8/16/32 (see the EIM docstring: FLOPs)
        vae_scales=(1, 2, 3),
        num_iters=1,
        share_weights=True,
        max_frames=10,
    ),
    decode_head=dict(
        type='CCFormerHead',
        num_classes=1,  # AVSBench-object (S4, MS3): one foreground class; AVSS configs set 71
        embed_dims=embed_dims,
        num_queries=5,
        # encoder=None: 3 deformable layers, 8 heads, 4 points, FFN 1024 (ccformer_head.DEFAULT_ENCODER)
        # each frame's queries read that frame's own audio (audio_context='frame'): the paper's "audio queries
        # within each frame ... from sparse audio features" and the authors' later code (docs/design.md, "Fidelity");
        # ablations/*-gen-clip-audio_* attend to the whole clip's audio instead
        query_generator=dict(type='AttentionQueryGenerator', mode='attention', num_layers=3, audio_context='frame'),
        decoder=dict(type='MultiQueryTransformerDecoder', num_ici_layers=3, num_iti_layers=3, combine='sum'),
        # cross-modal FPN: SRA + audio attention + FFN at strides 8/16/32 (d = 256); light stride-4 level
        # (width 64, audio cross-attention only): docs/model_size.md
        seg_head=dict(
            type='CrossModalFPNHead',
            sr_ratios=(8, 4, 2, 1),
            feedforward_channels=2048,
            fine_level='light',
            fine_dims=64,
            fine_audio=True,
            mask_dim=8,
        ),
        deep_supervision=True,
    ),
    bcl_loss=dict(
        type='BiModalContrastiveLoss',
        embed_dims=embed_dims,
        hidden_dims=512,
        proj_dims=128,
        temperature=0.07,
        pairing='enhanced_audio',
        same_clip='exclude',
        # audio->visual plus visual->audio InfoNCE, summed as in the authors' later code (docs/design.md,
        # "Fidelity"); ablations/*-bcl-one-way_* keep the query->key direction only
        directions='both',
        loss_weight=0.1,
    ),
    use_bcl=True,
    train_cfg=dict(),
)
