"""check_input_files: the tools' early check of their config and checkpoint."""

import pytest

from projects.ccformer.utils import check_input_files


def test_names_the_missing_file_and_appends_the_hint(tmp_path):
    config, ckpt = tmp_path / 'c.py', tmp_path / 'm.pth'
    config.write_text('x = 1\n')
    with pytest.raises(FileNotFoundError, match=r"Checkpoint file '.*m\.pth' does not exist; check the path \(hint\)"):
        check_input_files(str(config), str(ckpt), hint=' (hint)')
    ckpt.write_bytes(b'')
    check_input_files(str(config), str(ckpt))
    with pytest.raises(FileNotFoundError, match=r"Config file '.*other\.py'.* \{x\}$"):
        check_input_files(str(tmp_path / 'other.py'), str(ckpt), hint=' {x}')  # braces in the hint stay as given


def test_urls_are_left_to_mmengine_unless_refused(tmp_path):
    config = tmp_path / 'c.py'
    config.write_text('x = 1\n')
    check_input_files(str(config), 'https://example.org/m.pth')
    with pytest.raises(FileNotFoundError, match='Checkpoint file'):
        check_input_files(str(config), 'https://example.org/m.pth', allow_urls=False)
