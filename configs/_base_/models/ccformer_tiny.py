# Tiny CCFormer for CPU tests and the demo: the full architecture (EIM, deformable encoder, query generator, ICI/ITI
# decoder, cross-modal FPN head, BCL) at d = 32 with one layer each, a ResNet-18-style backbone with 16 base
# channels, and a narrow VGGish of the same structure (trainable: no pretrained weights are used).
_base_ = ['./ccformer_pvtv2-b5.py']
d = 32
model = dict(
    data_preprocessor=dict(size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='mmdet.ResNet',
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None,
    ),
    # Trained from scratch: a ReLU-aware init keeps different sounds apart (with PyTorch's default init the 9-layer
    # network gives nearly one embedding for every sound and the model learns to ignore the audio).
    audio_encoder=dict(
        channels=(8, 16, 32, 32),
        fc_dims=(64, 64),
        frozen=False,
        init_cfg=dict(_delete_=True, type='Kaiming', layer=['Conv2d', 'Linear'], nonlinearity='relu'),
    ),
    neck=dict(
        in_channels=[16, 32, 64, 128],
        embed_dims=d,
        num_heads=4,
        ffn_dims=64,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
    ),
    decode_head=dict(
        embed_dims=d,
        num_queries=3,
        encoder=dict(
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=d, num_heads=4, num_levels=3, num_points=2, dropout=0.0, batch_first=True
                ),
                ffn_cfg=dict(
                    embed_dims=d, feedforward_channels=64, ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True)
                ),
            ),
        ),
        query_generator=dict(num_layers=1, num_heads=4, feedforward_channels=64, proj_drop=0.0, ffn_drop=0.0),
        decoder=dict(
            num_ici_layers=1,
            num_iti_layers=1,
            ici_layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=d, num_heads=4, attn_drop=0.0, proj_drop=0.0),
                cross_attn_cfg=dict(
                    embed_dims=d, num_heads=4, num_levels=3, num_points=2, dropout=0.0, batch_first=True
                ),
                ffn_cfg=dict(
                    embed_dims=d, feedforward_channels=64, ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True)
                ),
            ),
            iti_layer_cfg=dict(num_heads=4, feedforward_channels=64, proj_drop=0.0, ffn_drop=0.0),
        ),
        seg_head=dict(
            num_heads=4,
            feedforward_channels=64,
            fine_dims=8,
            proj_drop=0.0,
            ffn_drop=0.0,
            norm_cfg=dict(type='GN', num_groups=8),
            mlp_channels=(16, 16),
        ),
    ),
    bcl_loss=dict(embed_dims=d, hidden_dims=32, proj_dims=16),
)
