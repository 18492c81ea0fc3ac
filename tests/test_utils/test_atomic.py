"""Atomic writes (projects/ccformer/utils/atomic.py): an interrupted or failed write never replaces a file with a
half-written one, and a full disk is an error naming the file (``cv2.imwrite`` reports success on ENOSPC)."""

import errno
import os

import cv2
import numpy as np
import pytest

from projects.ccformer.utils.atomic import (
    atomic_open,
    atomic_path,
    is_temp_file,
    leftover_temp_files,
    write_bytes,
    write_image,
    write_text,
)


def test_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / 'model.pth'
    target.write_bytes(b'old complete file')
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(str(target)) as f:
            f.write(b'half of the new')
            raise KeyboardInterrupt  # killed in the middle of the write
    assert target.read_bytes() == b'old complete file'
    assert os.listdir(tmp_path) == ['model.pth']  # no temporary file left
    write_bytes(str(target), b'new')
    assert target.read_bytes() == b'new' and os.listdir(tmp_path) == ['model.pth']


def test_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / 'summary.json'
    target.write_text('{"old": 1}')
    real_fsync = os.fsync

    def full(fd):  # ext4 reports ENOSPC of delayed allocation at fsync / close
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(OSError, match=r'cannot write .*summary.json .*No space left.*disk .*is full') as info:
        write_text(str(target), '{"new": 2}')
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert target.read_text() == '{"old": 1}'
    assert leftover_temp_files(str(tmp_path)) == []


def test_atomic_path_for_writers_that_take_a_path(tmp_path):
    target = tmp_path / 'out.mp4'
    with atomic_path(str(target)) as tmp:
        assert tmp.endswith('.mp4') and os.path.dirname(tmp) == str(tmp_path) and is_temp_file(tmp)
        with open(tmp, 'wb') as f:
            f.write(b'video')
    assert target.read_bytes() == b'video'
    with pytest.raises(OSError, match='produced no file'):
        with atomic_path(str(tmp_path / 'none.onnx')):
            pass  # the writer wrote nothing
    assert not (tmp_path / 'none.onnx').exists()


def test_new_files_get_the_usual_permissions(tmp_path):
    write_bytes(str(tmp_path / 'a.bin'), b'x')
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / 'a.bin').st_mode & 0o777 == 0o666 & ~umask


def test_leftover_temp_files_of_a_killed_writer(tmp_path):
    (tmp_path / '.epoch_3.pth.0123abcd.tmp.pth').write_bytes(b'half')
    (tmp_path / 'epoch_2.pth').write_bytes(b'x')
    (tmp_path / '.hidden').write_bytes(b'x')
    assert [os.path.basename(p) for p in leftover_temp_files(str(tmp_path))] == ['.epoch_3.pth.0123abcd.tmp.pth']
    assert leftover_temp_files(str(tmp_path), ['epoch_2.pth']) == []


def test_write_image_round_trip_and_encoding_error(tmp_path):
    img = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3).astype(np.uint8)
    write_image(str(tmp_path / 'm.png'), img)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'm.png'), cv2.IMREAD_UNCHANGED), img)
    with pytest.raises(ValueError, match=r'cannot encode .* as \.nope'):
        write_image(str(tmp_path / 'm.nope'), img)


def test_full_file_system(tiny_fs):
    """On a real full file system ``cv2.imwrite`` of a small mask returns True and leaves a 0-byte PNG;
    ``write_image`` raises naming the file and leaves the earlier file as it was."""
    mask = np.random.RandomState(0).randint(0, 256, (16, 16), np.uint8)
    keep = os.path.join(tiny_fs, 'keep.png')
    write_image(keep, np.zeros((4, 4), np.uint8))
    before = open(keep, 'rb').read()
    with open(os.path.join(tiny_fs, 'filler'), 'wb', buffering=0) as f:  # fill the disk
        try:
            while True:
                f.write(b'\0' * 1024)
        except OSError:
            pass
    cv_path = os.path.join(tiny_fs, 'cv.png')
    assert cv2.imwrite(cv_path, mask) and os.path.getsize(cv_path) == 0  # "success", empty file
    os.remove(cv_path)
    with pytest.raises(OSError, match=r'cannot write .*keep\.png \(No space left on device\): the disk') as info:
        write_image(keep, mask)
    assert info.value.errno == errno.ENOSPC
    assert open(keep, 'rb').read() == before
    assert leftover_temp_files(tiny_fs) == []
