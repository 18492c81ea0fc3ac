# Short name for configs/ccformer/ccformer_pvtv2-b5-robust_1xb6-40e_avss-224x224.py
_base_ = ['./ccformer/ccformer_pvtv2-b5-robust_1xb6-40e_avss-224x224.py']
