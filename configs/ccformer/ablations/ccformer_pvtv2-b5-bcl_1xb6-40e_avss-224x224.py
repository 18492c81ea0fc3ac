# Ablation: AVSS with bi-modal contrastive learning added to the per-pixel cross-entropy (the paper trains AVSS
# without BCL, Sec. IV-B).
_base_ = ['../ccformer_pvtv2-b5_1xb6-40e_avss-224x224.py']
model = dict(use_bcl=True)
