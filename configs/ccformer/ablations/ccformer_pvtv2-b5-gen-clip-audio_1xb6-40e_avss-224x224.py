# Ablation: the query generator's audio queries of frame t attend to the enhanced audio of every frame of the clip
# (audio_context='clip', frame positions as sine embeddings) instead of frame t's own audio; what the paper configs
# did before they followed the authors' code (docs/design.md, "Fidelity").
_base_ = ['../ccformer_pvtv2-b5_1xb6-40e_avss-224x224.py']
model = dict(decode_head=dict(query_generator=dict(audio_context='clip')))
