# Ablation (Table V): query generator "repeat" (audio feature repeated N times).
_base_ = ['../ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py']
model = dict(decode_head=dict(query_generator=dict(mode='repeat')))
