"""Helpers shared by the plug-in's datasets."""
import os.path as osp


def check_split_dirs(dataset, hint):
    """Raise one clear error when a dataset's image or label folder does not exist.

    Args:
        dataset (BaseSegDataset): a dataset after ``BaseDataset._join_prefix`` ran, so
            ``data_prefix`` holds absolute folders.
        hint (str): what the user should do, appended to the message.
    """
    for key in ('img_path', 'seg_map_path'):
        folder = dataset.data_prefix.get(key)
        if folder and not osp.isdir(folder):
            raise FileNotFoundError(
                f'{type(dataset).__name__}: {key} folder {folder} does not exist '
                f'(data_root={dataset.data_root!r}); {hint}')
