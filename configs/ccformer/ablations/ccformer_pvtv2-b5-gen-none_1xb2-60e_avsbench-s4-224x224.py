# Ablation (Table V): no query generator (learnable queries only).
_base_ = ['../ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py']
model = dict(decode_head=dict(query_generator=dict(mode='none')))
