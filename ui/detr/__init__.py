"""The DETR page's sections, one module each; `app_pages/detr.py` calls them in order.

`pickers` (model, image, the result kept once per process), `detections` (boxes, every query, the strip of
what each detection looks at), `cross_attention` (one query's maps in every layer and head), `downloads`,
`predictions` (every decoder layer's boxes), `encoder` (self-attention at a point), `decoder_self`,
`matching` and `positional`; `common` holds what they share. Every section with controls is a keyed
fragment: a control reruns its own section, and choosing a query reruns the two sections that show it.
The six sections under the detections are stateful tabs (`common.TABS`): only the open one runs.
"""
