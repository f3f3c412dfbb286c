"""Random-access data sources over tfds array_record datasets, with clear errors.

`data_source(name, split, data_dir)` opens `tfds.data_source`; builders that ship with
this project and need no download (e.g. `digits`) are prepared on first use. A missing
dataset raises an error that says how to prepare it; a record that fails to decode
raises an error naming the dataset, split and index.
"""
import importlib
import os

import tensorflow_datasets as tfds

# Datasets whose builders live in this repository: name -> (module, needs manual_dir).
LOCAL_BUILDERS = {
    "digits": ("common.data.digits", False),
    "digits_lt": ("longtail.data", False),
    "cifar_lt": ("longtail.data", False),
}
# Builders that prepare themselves from data shipped with a PyPI package.
SELF_PREPARING = {"digits", "digits_lt"}


def _data_dir(data_dir: str) -> str:
    return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def register_local_builder(name: str, module: str, self_preparing: bool = False) -> None:
    LOCAL_BUILDERS[name] = (module, not self_preparing)
    if self_preparing:
        SELF_PREPARING.add(name)


def _builder(name: str, data_dir: str):
    base = name.split("/")[0].split(":")[0]
    if base in LOCAL_BUILDERS:
        importlib.import_module(LOCAL_BUILDERS[base][0])  # registers the builder class
    return tfds.builder(name, data_dir=data_dir, file_format="array_record")


def prepare(name: str, data_dir: str = "", manual_dir: str | None = None) -> None:
    """Build a dataset into data_dir (array_record), as `tfds build` would."""
    builder = _builder(name, _data_dir(data_dir))
    cfg = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=cfg, file_format="array_record")


class CheckedSource:
    """A tfds data source whose failing records name dataset, split and index."""

    def __init__(self, source, name: str, split: str):
        self._source, self.name, self.split = source, name, split

    def __len__(self):
        return len(self._source)

    def __getitem__(self, index):
        try:
            return self._source[index]
        except Exception as e:
            raise ValueError(f"corrupt record: dataset {self.name!r}, split {self.split!r}, "
                             f"index {index}: {type(e).__name__}: {e}") from e


def data_source(name: str, split: str, data_dir: str = "") -> CheckedSource:
    data_dir = _data_dir(data_dir)
    builder = _builder(name, data_dir)
    if not builder.is_prepared():
        base = name.split("/")[0].split(":")[0]
        if base in SELF_PREPARING:
            prepare(name, data_dir)
        else:
            manual = LOCAL_BUILDERS.get(base, (None, True))[1] or name.startswith("imagenet")
            how = (f"tfds build {name} --data_dir={data_dir} --file_format=array_record"
                   + (" --manual_dir=DIR_WITH_THE_OFFICIAL_FILES" if manual else ""))
            if base in LOCAL_BUILDERS:
                how = (f"python -c \"from common.data.sources import prepare; prepare('{name}', "
                       f"'{data_dir}', manual_dir='DIR_WITH_THE_OFFICIAL_FILES')\"")
            raise FileNotFoundError(
                f"dataset {name!r} is not prepared in {data_dir}. Prepare it once with "
                f"(needs `pip install '.[data]'`):\n  {how}\n"
                f"or point config.data.data_dir at a directory that holds it.")
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir,
                                  builder_kwargs={"file_format": "array_record"})
    except Exception as e:
        raise FileNotFoundError(f"cannot open split {split!r} of {name!r} in {data_dir}: {e}") from e
    return CheckedSource(source, name, split)
