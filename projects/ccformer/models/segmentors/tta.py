"""Test-time augmentation of clips (``tools/test.py --tta``): average the logits of a clip and its flipped copies."""

from typing import List, Sequence

import torch
from mmengine.model import BaseTTAModel
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor


@MODELS.register_module()
class AVSTTAModel(BaseTTAModel):
    """Flip test-time augmentation of a CCFormer, mmseg's ``SegTTAModel`` pattern for clips.

    The config's ``tta_pipeline`` ends with mmcv's ``TestTimeAug``, which hands each clip over as several views,
    e.g. the clip and its horizontal mirror (every frame flipped alike by ``ClipConsistentTransform``). Per view:
    the model's data preprocessor and tensor forward give logits ``(N, T, K, H, W)`` at the input size, and the
    view's flip (metainfo ``flip`` / ``flip_direction``) is undone inside its ``img_shape``. :meth:`merge_preds`
    averages the views' logits, and the model's ``postprocess_result`` finishes as in a plain test, with the data
    samples of the unflipped view: crop the padding, resize to ``ori_shape``, then ``seg_logits`` and the threshold
    (K = 1) or the argmax (K > 1, padded frames set to background).

    Logits are averaged (mmseg's ``SegTTAModel`` averages probabilities) so ``seg_logits`` stays a logit, which the
    binary metrics threshold like a plain test's. A model whose output is flip-equivariant gives exactly its plain
    output.

    Args:
        module (dict | nn.Module): the segmentor (``tools/test.py --tta`` sets it to the config's ``model``).
        data_preprocessor (dict, optional): see mmengine's ``BaseTTAModel``.
    """

    def test_step(self, data: dict) -> List[SegDataSample]:
        """``data``: the collated batch of ``TestTimeAug``, every key a list over the views."""
        if not isinstance(data, dict):
            raise TypeError(f'AVSTTAModel takes the collated dict of TestTimeAug views, got {type(data).__name__}')
        num_views = len(data['inputs'])
        logits, samples = [], None
        for v in range(num_views):
            batch = self.module.data_preprocessor({key: value[v] for key, value in data.items()}, False)
            out = self.module(batch['inputs'], batch['data_samples'], mode='tensor', audio=batch.get('audio'))
            logits.append(self.undo_flip(out, batch['data_samples']))
            if samples is None and not any(s.metainfo.get('flip', False) for s in batch['data_samples']):
                samples = batch['data_samples']
        if samples is None:
            raise ValueError(
                'AVSTTAModel: every view is flipped; tta_pipeline must keep one unflipped view (a RandomFlip with '
                'prob=0.0 in TestTimeAug), whose data samples (ground truth, metainfo) the result keeps'
            )
        return self.module.postprocess_result(self.merge_preds(logits), samples)

    def merge_preds(self, data_samples_list: Sequence[Tensor]) -> Tensor:
        """Mean of the views' logits ``(N, T, K, H, W)`` (flips already undone).

        Raises:
            ValueError: the views differ in size (only flips are supported, not multi-scale views).
        """
        shapes = sorted({tuple(x.shape) for x in data_samples_list})
        if len(shapes) != 1:
            raise ValueError(
                f'AVSTTAModel averages views of one size (flips); the tta_pipeline gave views of sizes {shapes}'
            )
        return torch.stack(list(data_samples_list)).mean(0)

    @staticmethod
    def undo_flip(logits: Tensor, data_samples: Sequence[SegDataSample]) -> Tensor:
        """Flip each clip's logits ``(N, T, K, H, W)`` back inside its ``img_shape`` where its metainfo says
        ``flip`` (``flip_direction`` ``'horizontal'`` or ``'vertical'``); the padding stays where it is."""
        out = logits.clone()
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            if not meta.get('flip', False):
                continue
            direction = meta.get('flip_direction') or 'horizontal'
            if direction not in ('horizontal', 'vertical'):
                raise ValueError(f'AVSTTAModel: unsupported flip_direction {direction!r}')
            h, w = meta.get('img_shape', logits.shape[-2:])[:2]
            dim = -1 if direction == 'horizontal' else -2
            out[i, ..., :h, :w] = logits[i, ..., :h, :w].flip(dims=(dim,))
        return out
