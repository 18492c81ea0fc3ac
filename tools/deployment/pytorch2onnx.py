"""Export a CCFormer checkpoint to ONNX and check the file with ONNX Runtime against PyTorch.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx [--shape H W]

The graph is the model's tensor core: normalised frames ``frames (N, T, 3, H, W)`` and log-mel audio
``audio (N, T, 1, 96, 64)`` -> ``logits (N, T, K, H, W)``, N dynamic, T and the frame size fixed (the config's,
``projects.ccformer.utils.config_input_size``: 224 x 224 for the AVSBench configs, 64 x 64 for the tiny ones;
``--shape`` overrides it); the deformable attention runs its PyTorch path (``grid_sample``). The pre- and
post-processing parameters go into the file's metadata, so
``demo/video_demo.py VIDEO --backend onnxruntime --onnx model.onnx`` and ``projects.ccformer.deployment.ORTSegmentor``
need no config. After writing, the file is run with ONNX Runtime on
random inputs of 1 and 2 clips (``--verify-batch-sizes``) next to the PyTorch model and the largest difference of the
logits is printed; the exit status is 1 when it exceeds ``--atol`` or a mask differs on more than ``--min-agreement``
of the pixels. See ``docs/deployment.md``.
"""

import argparse
import json
import os.path as osp
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export CCFormer to ONNX and check it with ONNX Runtime')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='frame size the model runs at (multiples of 32; default: the config\'s, 224 224 for AVSBench)',
    )
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (>= 16: GridSample)')
    parser.add_argument('--no-dynamic-batch', action='store_true', help='fix N to --batch-size')
    parser.add_argument('--batch-size', type=int, default=1, help='clips in the example input of the export')
    parser.add_argument(
        '--verify-batch-sizes',
        type=int,
        nargs='*',
        default=[1, 2],
        help='clips per check against PyTorch (none: skip the check)',
    )
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-3,
        help='largest absolute logit difference accepted (fp32; see docs/deployment.md)',
    )
    parser.add_argument(
        '--min-agreement', type=float, default=0.999, help='smallest fraction of mask pixels that must agree'
    )
    parser.add_argument('--threads', type=int, default=None, help='threads of ONNX Runtime and PyTorch')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        metavar='KEY=VALUE',
        help='override config entries (mmengine DictAction syntax)',
    )
    args = parser.parse_args(argv)
    if args.no_dynamic_batch and any(n != args.batch_size for n in args.verify_batch_sizes):
        parser.error('--no-dynamic-batch fixes N to --batch-size: --verify-batch-sizes must equal it')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from mmengine.config import DictAction

    from projects.ccformer.apis import get_num_frames, init_avs_model
    from projects.ccformer.deployment.onnx_export import export_onnx, verify_onnx
    from projects.ccformer.utils import config_input_size

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg_options = None
    if args.cfg_options:
        opt = argparse.ArgumentParser()
        opt.add_argument('--o', nargs='+', action=DictAction)
        cfg_options = opt.parse_args(['--o', *args.cfg_options]).o
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'error: {what} file {path} does not exist')
    model = init_avs_model(args.config, args.checkpoint, device='cpu', cfg_options=cfg_options)
    num_frames = get_num_frames(model)
    try:
        shape = tuple(args.shape) if args.shape else config_input_size(model.cfg)
        meta = export_onnx(
            model,
            args.out,
            num_frames,
            shape,
            batch_size=args.batch_size,
            opset=args.opset,
            dynamic_batch=not args.no_dynamic_batch,
            source=dict(config=osp.basename(args.config), checkpoint=osp.basename(args.checkpoint)),
        )
    except ValueError as err:
        sys.exit(f'error: {err}')
    print(
        f'wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB): T={num_frames}, '
        f'{shape[0]} x {shape[1]}, K={meta["num_classes"]}, opset {args.opset}'
    )
    report = dict(onnx=args.out, meta=meta, checks={})
    if args.verify_batch_sizes:
        report['checks'] = verify_onnx(model, args.out, args.verify_batch_sizes, num_threads=args.threads)
        for name, res in report['checks'].items():
            print(
                f'{name}: largest |logit difference| ONNX Runtime vs PyTorch {res["max_abs_diff"]:.3g} '
                f'({res["max_rel_diff"]:.3g} of the largest logit), masks agree on '
                f'{100 * res["mask_agreement"]:.4f}% of pixels'
            )
        worst = max(r['max_abs_diff'] for r in report['checks'].values())
        agree = min(r['mask_agreement'] for r in report['checks'].values())
        report['passed'] = worst <= args.atol and agree >= args.min_agreement
        if not report['passed']:
            print(json.dumps(report['checks'], indent=1))
            sys.exit(
                f'error: ONNX Runtime differs from PyTorch: largest logit difference {worst:.3g} '
                f'(--atol {args.atol}), mask agreement {agree:.6f} (--min-agreement {args.min_agreement})'
            )
    return report


if __name__ == '__main__':
    main()
