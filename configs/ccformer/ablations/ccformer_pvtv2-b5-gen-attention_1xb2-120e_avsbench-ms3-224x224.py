# Ablation (Table V): query generator "attention" (the full model, listed for the table).
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(decode_head=dict(query_generator=dict(mode='attention')))
