"""``model-index.yml`` and ``configs/ccformer/metafile.yaml`` in mmseg's format: every metafile it imports exists,
every model names a config that exists and parses (with the name as its stem), and every config of
``configs/ccformer/`` (the ablations aside) is listed."""

import glob
import os.path as osp

import yaml
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _metafiles():
    with open(osp.join(ROOT, 'model-index.yml')) as fh:
        index = yaml.safe_load(fh)
    assert set(index) == {'Import'} and index['Import']
    return index['Import']


def test_model_index_and_metafiles():
    names = set()
    for rel in _metafiles():
        path = osp.join(ROOT, rel)
        assert osp.isfile(path), f'model-index.yml imports {rel}, which does not exist'
        with open(path) as fh:
            meta = yaml.safe_load(fh)
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            config = osp.join(ROOT, model['Config'])
            assert osp.isfile(config), f'{rel}: {model["Name"]} names {model["Config"]}, which does not exist'
            assert osp.splitext(osp.basename(config))[0] == model['Name']
            cfg = Config.fromfile(config)
            assert cfg.model.type == 'CCFormer' and 'test_pipeline' in cfg
            assert {'Training Data', 'Batch Size', 'Architecture'} <= set(model['Metadata'])
            assert model['Metadata']['Batch Size'] == cfg.train_dataloader.batch_size, model['Name']
            names.add(model['Name'])
    configs = {osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(ROOT, 'configs', 'ccformer', '*.py'))}
    assert configs == names, f'not in a metafile: {sorted(configs - names)}; gone: {sorted(names - configs)}'
