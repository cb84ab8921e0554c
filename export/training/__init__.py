"""``edge-export train``: fine-tune a classifier, segmenter or multitask model on a labelled
MVTec-layout folder and write it as a normal bundle with its calibration and training recipe.

request.py (what to train) → data.py (images, masks, split, oversampling) → network.py (pretrained
trunk, which layers train) → loop.py (epochs, progress, checkpoint choice) → validation.py
(thresholds and metrics on the held-out split) → trainer.py (ties it together, exports).
"""
