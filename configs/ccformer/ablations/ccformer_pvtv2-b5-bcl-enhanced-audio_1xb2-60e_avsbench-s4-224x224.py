# Ablation (Table IX): BCL pairing: enhanced audio vs original audio (the full model, listed for the table).
_base_ = ['../ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py']
model = dict(bcl_loss=dict(pairing='enhanced_audio'))
