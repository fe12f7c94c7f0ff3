/*
 * DEEPIMPUTE: filter, (mask,) train once per sample, impute chunks of cells in parallel, merge,
 * (score). Every process is a module of modules/local/deepimpute; its options come from
 * conf/modules.config.
 */

include { DEEPIMPUTE_FILTER } from '../modules/local/deepimpute/filter/main'
include { DEEPIMPUTE_MASK   } from '../modules/local/deepimpute/mask/main'
include { DEEPIMPUTE_TRAIN  } from '../modules/local/deepimpute/train/main'
include { DEEPIMPUTE_SPLIT  } from '../modules/local/deepimpute/split/main'
include { DEEPIMPUTE_IMPUTE } from '../modules/local/deepimpute/impute/main'
include { DEEPIMPUTE_MERGE  } from '../modules/local/deepimpute/merge/main'
include { DEEPIMPUTE_SCORE  } from '../modules/local/deepimpute/score/main'
include { DEEPIMPUTE_REPORT } from '../modules/local/deepimpute/report/main'

workflow DEEPIMPUTE {
    take:
    ch_samples // channel: [ val(meta), path(counts) ]
    model      // a trained model (folder or zip) for every sample, or [] to train one per sample
    evaluate   // boolean: mask before training and score after imputing

    main:
    DEEPIMPUTE_FILTER(ch_samples)

    ch_ready = DEEPIMPUTE_FILTER.out.loom
    if (evaluate) {
        DEEPIMPUTE_MASK(DEEPIMPUTE_FILTER.out.loom)
        ch_ready = DEEPIMPUTE_MASK.out.loom
    }

    if (model) {
        ch_model = ch_ready.map { meta, _loom -> [meta, model] }
    }
    else {
        DEEPIMPUTE_TRAIN(ch_ready)
        ch_model = DEEPIMPUTE_TRAIN.out.model
    }

    DEEPIMPUTE_SPLIT(ch_ready)
    ch_chunks = DEEPIMPUTE_SPLIT.out.chunks.transpose()
    DEEPIMPUTE_IMPUTE(ch_chunks.combine(ch_model, by: 0))
    DEEPIMPUTE_MERGE(DEEPIMPUTE_IMPUTE.out.loom.groupTuple())

    ch_scores = channel.empty()
    ch_figures = DEEPIMPUTE_FILTER.out.qc_plot
    if (!model) {
        ch_figures = ch_figures.mix(DEEPIMPUTE_TRAIN.out.loss_plot)
    }
    if (evaluate) {
        DEEPIMPUTE_SCORE(DEEPIMPUTE_MERGE.out.loom)
        ch_scores = DEEPIMPUTE_SCORE.out.scores
        ch_figures = ch_figures.mix(DEEPIMPUTE_SCORE.out.plots)
    }

    // each sample's results as MultiQC custom content: [meta, counts, model, scores or [], figures]
    ch_report_scores = evaluate ? ch_scores : DEEPIMPUTE_FILTER.out.loom.map { meta, _loom -> [meta, []] }
    DEEPIMPUTE_REPORT(
        DEEPIMPUTE_FILTER.out.loom
            .join(ch_model)
            .join(ch_report_scores)
            .join(ch_figures.groupTuple(sort: true))
    )

    emit:
    imputed       = DEEPIMPUTE_MERGE.out.loom             // channel: [ val(meta), path(imputed.loom) ]
    scores        = ch_scores                             // channel: [ val(meta), path(scores.json) ]
    multiqc_files = DEEPIMPUTE_REPORT.out.multiqc_files   // channel: [ val(meta), [ path(*_mqc.*) ] ]
}
