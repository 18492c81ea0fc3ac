# Short name for configs/ccformer/ccformer_r50-robust_1xb2-120e_avsbench-ms3-224x224.py
_base_ = ['./ccformer/ccformer_r50-robust_1xb2-120e_avsbench-ms3-224x224.py']
