# The host board's littlefs2 flash image (TGD_FLASH naming a file, not a folder):
# a block device over a file, mounted as littlefs2 (board_host.mount_image).
import vfs
from micropython import const

_BLOCK_SIZE = const(4096)
_IMAGE_BLOCKS = const(64)     # a 256 KiB flash partition, like a small ESP32 data partition


class FileBlockDevice:
    """A littlefs block device over a file: flash that survives the process, power cuts
    included (every write goes to the file at once)."""

    def __init__(self, path, block_size=_BLOCK_SIZE, blocks=_IMAGE_BLOCKS):
        self.block_size = block_size
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "w+b")
            erased = b"\xff" * block_size
            for _ in range(blocks):
                f.write(erased)
            f.flush()
        f.seek(0, 2)
        self.blocks = f.tell() // block_size
        if self.blocks < 8:
            raise ValueError("flash image too small: " + path)
        self._f = f
        self._erased = b"\xff" * block_size  # allocated once: no 4 KB allocation per erase

    def readblocks(self, num, buf, offset=0):
        self._f.seek(num * self.block_size + offset)
        self._f.readinto(buf)

    def writeblocks(self, num, buf, offset=None):
        self._f.seek(num * self.block_size + (offset or 0))
        self._f.write(buf)
        self._f.flush()

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase
            self._f.seek(arg * self.block_size)
            self._f.write(self._erased)
            self._f.flush()
            return 0
        return 0


def mount_image(path, mount_point):
    bdev = FileBlockDevice(path)
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)  # new or unreadable image: format it, as a blank ESP32
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, mount_point)
