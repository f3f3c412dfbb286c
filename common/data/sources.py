"""Random-access data sources over tfds array_record datasets, with clear errors.

`data_source(name, split, data_dir, builder)` opens a tfds data source. `builder` is the
module that defines the tfds builder when it is not one of tfds's own (the dataset's
`config.data.builder`, e.g. `mypackage.data`): importing it registers the builder class.
A builder class with `PREPARES_ITSELF = True` needs no download (data generated or shipped
with a PyPI package) and is prepared on first use. A missing dataset raises an error that
says how to prepare it; a record that fails to decode raises an error naming the dataset,
split and index. A tfds builder whose code needs TensorFlow just to be constructed (tfds's
coco) is read from the prepared files alone, so reading never needs TensorFlow.
"""
import importlib
import os

import tensorflow_datasets as tfds


def _data_dir(data_dir: str) -> str:
    return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def tfds_builder(name: str, data_dir: str = "", module: str = ""):
    """The tfds builder of a dataset (`module` defines it when tfds does not)."""
    if module:
        importlib.import_module(module)  # registers the builder class
    return tfds.builder(name, data_dir=_data_dir(data_dir), file_format="array_record")


def _reader(name: str, data_dir: str, module: str = ""):
    """The builder of a dataset to read. Some of tfds's own builders (e.g. coco) need
    TensorFlow just to be constructed; a prepared copy is then read from its files alone
    (features.json), so training needs no TensorFlow."""
    try:
        return tfds_builder(name, data_dir, module)
    except ModuleNotFoundError as e:
        try:
            return tfds.core.read_only_builder.builder_from_files(name, data_dir=data_dir,
                                                                  file_format="array_record")
        except Exception:  # noqa: BLE001 - not prepared either: the original error says why
            raise ModuleNotFoundError(
                f"dataset {name!r} is not prepared in {data_dir}, and its tfds builder cannot be "
                f"constructed here ({e}). Prepare it once (needs `pip install '.[data]'`):\n  "
                f"tfds build {name} --data_dir={data_dir} --file_format=array_record\n"
                f"reading the prepared copy then needs no TensorFlow.") from e


def manual_root(dl_manager, instructions: str = "") -> str:
    """The manual_dir of a builder that reads official files, which must exist."""
    root = os.fspath(dl_manager.manual_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"manual_dir {root!r} does not exist. {instructions}".rstrip())
    return root


def prepare(name: str, data_dir: str = "", manual_dir: str | None = None, builder: str = "") -> None:
    """Build a dataset into data_dir (array_record), as `tfds build` would."""
    b = tfds_builder(name, data_dir, builder)
    cfg = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    b.download_and_prepare(download_config=cfg, file_format="array_record")


class CheckedSource:
    """A tfds data source whose failing records name dataset, split and index."""

    def __init__(self, source, name: str, split: str):
        self._source, self.name, self.split = source, name, split

    def __len__(self):
        return len(self._source)

    @property
    def dataset_info(self):
        """The tfds DatasetInfo (features, splits, the builder's metadata)."""
        return self._source.dataset_info

    def __getitem__(self, index):
        try:
            return self._source[index]
        except Exception as e:
            raise ValueError(f"corrupt record: dataset {self.name!r}, split {self.split!r}, "
                             f"index {index}: {type(e).__name__}: {e}") from e


def data_source(name: str, split: str, data_dir: str = "", builder: str = "") -> CheckedSource:
    data_dir = _data_dir(data_dir)
    b = _reader(name, data_dir, builder)
    if not b.is_prepared():
        if getattr(type(b), "PREPARES_ITSELF", False):
            prepare(name, data_dir, builder=builder)
            b = _reader(name, data_dir, builder)
        else:
            manual = getattr(type(b), "MANUAL_DOWNLOAD_INSTRUCTIONS", None) or name.startswith("imagenet")
            how = (f"tfds build {name} --data_dir={data_dir} --file_format=array_record"
                   + (" --manual_dir=DIR_WITH_THE_OFFICIAL_FILES" if manual else ""))
            if builder:
                how = (f"python -c \"from common.data.sources import prepare; prepare('{name}', "
                       f"'{data_dir}', manual_dir='DIR_WITH_THE_OFFICIAL_FILES', builder='{builder}')\"")
            raise FileNotFoundError(
                f"dataset {name!r} is not prepared in {data_dir}. Prepare it once with "
                f"(needs `pip install '.[data]'`):\n  {how}\n"
                f"or point config.data.data_dir at a directory that holds it.")
    try:
        source = b.as_data_source(split=split)
    except Exception as e:
        raise FileNotFoundError(f"cannot open split {split!r} of {name!r} in {data_dir}: {e}") from e
    return CheckedSource(source, name, split)
