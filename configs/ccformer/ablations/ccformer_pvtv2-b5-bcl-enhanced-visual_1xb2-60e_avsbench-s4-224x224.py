# Ablation (Table IX): BCL pairing: enhanced visual vs original audio.
_base_ = ['../ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py']
model = dict(bcl_loss=dict(pairing='enhanced_visual'))
