# Ablation (Table VII): 2 ICI layers.
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(decode_head=dict(decoder=dict(num_ici_layers=2)))
