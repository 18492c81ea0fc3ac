# Ablation (Table VII): 1 ICI layer (3 ITI layers after it).
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(decode_head=dict(decoder=dict(num_ici_layers=1)))
