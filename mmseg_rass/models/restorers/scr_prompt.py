"""SCR text prompts: the names of the classes present in the GT, with each class's token positions."""
import torch


def build_class_prompt(tokenizer, class_names, class_ids, separator=','):
    """Token ids of ``"name_a, name_b, ..."`` and the positions of each class's sub-tokens.

    Each name is tokenised on its own and the pieces are joined with the separator's tokens, so
    the positions are exact (CLIP's pre-tokeniser splits at spaces and punctuation, so this
    equals tokenising the joined string). Classes that no longer fit in
    ``tokenizer.model_max_length`` (77) tokens are left out.

    Args:
        tokenizer (CLIPTokenizer): The text encoder's tokenizer.
        class_names (Sequence[str]): Names of all dataset classes (dataset metainfo ``classes``).
        class_ids (Iterable[int]): Classes to name, in order.
        separator (str): Text between names. Default ``','``.

    Returns:
        tuple[Tensor, dict[int, list[int]]]: Ids (max_length, ) padded with the pad token, and
        class id -> token positions (0 is the start token).
    """
    max_length = tokenizer.model_max_length
    sep = tokenizer(separator, add_special_tokens=False).input_ids if separator else []
    ids, positions = [tokenizer.bos_token_id], {}
    for k in class_ids:
        name = class_names[k].replace('_', ' ')
        piece = tokenizer(name, add_special_tokens=False).input_ids
        glue = sep if positions else []
        if len(ids) + len(glue) + len(piece) + 1 > max_length:
            break
        ids += glue
        positions[int(k)] = list(range(len(ids), len(ids) + len(piece)))
        ids += piece
    ids.append(tokenizer.eos_token_id)
    ids += [tokenizer.pad_token_id] * (max_length - len(ids))
    return torch.tensor(ids, dtype=torch.long), positions


def present_classes(seg_label, num_classes, ignore_index=255):
    """Sorted class ids present in a label map (values outside [0, num_classes) are skipped)."""
    values = torch.unique(seg_label)
    return [int(v) for v in values if v != ignore_index and 0 <= v < num_classes]
