# Ablation (Table IX): BCL pairing: original visual vs original audio.
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(bcl_loss=dict(pairing='original_visual'))
