# The runs of the text-tower factor, one scripts/sweep.sh call a line. scripts/report.sh sources
# this file with DATA (the synthetic data folder), PRE (the pre-trained CLIP run) and SEEDS set
# and `sweep NAME CONFIG GRID [sweep options]` running scripts/sweep.sh into WORK/text-tower/NAME.
# The pre-trained CLIP comes first: the vocab and trim-tail factors use it too. A random text
# tower that trains is clip-vs-sl's CLIP run (the same configuration), not run again.
sweep pretrain pretrain-clip.yaml "seed=0" --set "data=$DATA/pretrain/dataset.yaml"
sweep init clip.yaml "model.text.freeze=false,true seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml" \
    --set "model.text.init=$PRE"
sweep random-frozen clip.yaml "seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml" \
    --set "model.text.init=random" --set "model.text.freeze=true"
