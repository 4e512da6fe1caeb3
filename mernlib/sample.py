"""The bundled sample corpus: small, synthetic, and shaped like the real ones.

``python -m mernlib.sample`` regenerates ``data/sample/`` byte for byte (same seed, same files):

* ``train.pubtator`` / ``dev.pubtator`` / ``test.pubtator``: 80 / 20 / 20 short abstracts in PubTator
  format, with Chemical and Disease mentions normalized to MeSH IDs, a few OMIM IDs (as in NCBI-disease),
  NIL (``-1``) chemicals, composite mentions with a seventh column (as in BC5CDR) and ``CID`` relations;
* ``entities.tsv``: the entity base of the sample (ID, preferred name, a short definition), in the layout of
  the real ``mesh.tsv``;
* ``iob/<dataset>/{train,devel,test}.tsv``: five tiny NER datasets, one entity type each (chemical, two
  disease sets, gene/protein, species), tagged like the Crichton et al. (2017) collection, for the
  hierarchical-transfer notebook;
* ``README.md``: how the files were made, with their statistics.

The abstracts are written from hand-written sentence templates and lexicons of real disease and chemical
names with their real MeSH (or OMIM) IDs. Synonyms and abbreviations ("high blood pressure", "NIDDM",
"CDDP") make normalization more than string matching, and some names and concepts occur only in the dev
and test splits, so out-of-vocabulary analyses have something to show. The text is synthetic: it makes no
medical claim.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass
from pathlib import Path

from .corpus import NIL, Document, Mention, Relation, corpus_stats
from .pubtator import format_pubtator

DEFAULT_SEED = 13
SPLIT_SIZES = {"train": 80, "dev": 20, "test": 20}
IOB_SPLIT_SIZES = {"train": 60, "devel": 20, "test": 20}
_SPLIT_OFFSETS = {"train": 0, "dev": 1, "test": 2}


# --------------------------------------------------------------------------------------------------
# Lexicons. Each concept: ID, type, preferred name, a short definition (written for this kit), the
# surface forms used in every split, and forms used only in dev/test ("eval_forms"). A concept with
# ``eval_only`` occurs only in dev/test. IDs are real MeSH descriptors / OMIM numbers.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Concept:
    id: str
    type: str
    name: str
    definition: str
    forms: tuple[str, ...]
    eval_forms: tuple[str, ...] = ()
    eval_only: bool = False


def _c(id_, name, definition, forms, eval_forms=(), eval_only=False):
    return Concept(id_, "Chemical", name, definition, tuple(forms), tuple(eval_forms), eval_only)


def _d(id_, name, definition, forms, eval_forms=(), eval_only=False):
    return Concept(id_, "Disease", name, definition, tuple(forms), tuple(eval_forms), eval_only)


CHEMICALS: tuple[Concept, ...] = (
    _c("D009270", "Naloxone", "Opioid receptor antagonist used to reverse opioid effects.", ["naloxone"]),
    _c("D003000", "Clonidine", "Alpha-2 adrenergic agonist that lowers blood pressure.", ["clonidine"]),
    _c(
        "D008750",
        "Methyldopa",
        "Centrally acting antihypertensive agent.",
        ["methyldopa", "alpha-methyldopa"],
    ),
    _c(
        "D002945",
        "Cisplatin",
        "Platinum compound used in cancer chemotherapy.",
        ["cisplatin", "CDDP"],
        ["cis-diamminedichloroplatinum"],
    ),
    _c(
        "D008012",
        "Lidocaine",
        "Local anesthetic and class Ib antiarrhythmic agent.",
        ["lidocaine"],
        ["lignocaine"],
    ),
    _c(
        "D004317",
        "Doxorubicin",
        "Anthracycline antibiotic used as an antineoplastic agent.",
        ["doxorubicin", "adriamycin"],
    ),
    _c("D006220", "Haloperidol", "Butyrophenone antipsychotic agent.", ["haloperidol"]),
    _c(
        "D003042",
        "Cocaine",
        "Alkaloid local anesthetic and stimulant of the central nervous system.",
        ["cocaine"],
    ),
    _c("D009020", "Morphine", "Opioid analgesic alkaloid of opium.", ["morphine"]),
    _c("D016651", "Lithium Carbonate", "Lithium salt used as a mood stabilizer.", ["lithium carbonate"]),
    _c(
        "D003520",
        "Cyclophosphamide",
        "Alkylating agent used in chemotherapy and immunosuppression.",
        ["cyclophosphamide"],
    ),
    _c("D013629", "Tamoxifen", "Selective estrogen receptor modulator.", ["tamoxifen"]),
    _c("D008687", "Metformin", "Biguanide that lowers blood glucose.", ["metformin"]),
    _c(
        "D001241",
        "Aspirin",
        "Salicylate with analgesic, antipyretic and antiplatelet actions.",
        ["aspirin", "acetylsalicylic acid"],
    ),
    _c("D000082", "Acetaminophen", "Analgesic and antipyretic agent.", ["acetaminophen"], ["paracetamol"]),
    _c("D005839", "Gentamicins", "Aminoglycoside antibiotic complex.", ["gentamicin"]),
    _c("D005665", "Furosemide", "Loop diuretic.", ["furosemide"], ["frusemide"]),
    _c("D002216", "Captopril", "Angiotensin-converting enzyme inhibitor.", ["captopril"]),
    _c("D009543", "Nifedipine", "Dihydropyridine calcium channel blocker.", ["nifedipine"]),
    _c("D011433", "Propranolol", "Non-selective beta-adrenergic antagonist.", ["propranolol"]),
    _c("D004077", "Digoxin", "Cardiac glycoside from foxglove.", ["digoxin"]),
    _c("D014859", "Warfarin", "Oral anticoagulant that antagonizes vitamin K.", ["warfarin"]),
    _c("D006493", "Heparin", "Sulfated polysaccharide anticoagulant.", ["heparin"]),
    _c("D000638", "Amiodarone", "Class III antiarrhythmic agent.", ["amiodarone"]),
    _c("D003907", "Dexamethasone", "Synthetic glucocorticoid.", ["dexamethasone"]),
    _c(
        "D008727",
        "Methotrexate",
        "Folic acid antagonist used in cancer and rheumatic disease.",
        ["methotrexate", "MTX"],
    ),
    _c("D014750", "Vincristine", "Vinca alkaloid that blocks mitosis.", ["vincristine"]),
    _c("D017239", "Paclitaxel", "Taxane that stabilizes microtubules.", ["paclitaxel"], ["taxol"]),
    _c("D002220", "Carbamazepine", "Anticonvulsant and mood stabilizer.", ["carbamazepine"]),
    _c("D014635", "Valproic Acid", "Anticonvulsant fatty acid.", ["valproic acid", "valproate"], ["VPA"]),
    _c("D010672", "Phenytoin", "Hydantoin anticonvulsant.", ["phenytoin"]),
    _c("D013311", "Streptozocin", "Nitrosourea toxic to pancreatic beta cells.", ["streptozotocin", "STZ"]),
    _c("D002110", "Caffeine", "Methylxanthine stimulant.", ["caffeine"]),
    _c("D000431", "Ethanol", "Two-carbon alcohol.", ["ethanol"]),
    _c(
        "D007649",
        "Ketamine",
        "Dissociative anesthetic that blocks NMDA receptors.",
        ["ketamine"],
        eval_only=True,
    ),
    _c("D010862", "Pilocarpine", "Muscarinic agonist alkaloid.", ["pilocarpine"], eval_only=True),
)

DISEASES: tuple[Concept, ...] = (
    _d(
        "D006973",
        "Hypertension",
        "Persistently raised arterial blood pressure.",
        ["hypertension", "high blood pressure"],
        ["elevated blood pressure"],
    ),
    _d(
        "D007022",
        "Hypotension",
        "Abnormally low arterial blood pressure.",
        ["hypotension", "low blood pressure"],
    ),
    _d(
        "D003924",
        "Diabetes Mellitus, Type 2",
        "Diabetes with insulin resistance, usually of adult onset.",
        ["type 2 diabetes", "NIDDM", "non-insulin-dependent diabetes mellitus"],
        ["type II diabetes"],
    ),
    _d(
        "D001943",
        "Breast Neoplasms",
        "Tumors of the breast.",
        ["breast cancer", "breast carcinoma"],
        ["mammary carcinoma"],
    ),
    _d("D010051", "Ovarian Neoplasms", "Tumors of the ovary.", ["ovarian cancer"]),
    _d("D014786", "Vision Disorders", "Impairments of sight.", ["visual disturbances"]),
    _d("D006311", "Hearing Disorders", "Impairments of hearing.", ["hearing disorders"]),
    _d("D012640", "Seizures", "Episodes of abnormal excessive brain activity.", ["seizures", "convulsions"]),
    _d(
        "D006333",
        "Heart Failure",
        "Inability of the heart to pump enough blood.",
        ["heart failure"],
        ["cardiac failure"],
    ),
    _d(
        "D009203",
        "Myocardial Infarction",
        "Death of heart muscle from interrupted blood supply.",
        ["myocardial infarction", "MI"],
    ),
    _d("D007674", "Kidney Diseases", "Disorders of the kidney.", ["nephrotoxicity", "renal damage"]),
    _d(
        "D056486",
        "Chemical and Drug Induced Liver Injury",
        "Liver damage caused by drugs or chemicals.",
        ["hepatotoxicity", "liver injury"],
        ["hepatic injury"],
    ),
    _d("D009503", "Neutropenia", "Too few neutrophils in the blood.", ["neutropenia"]),
    _d("D013921", "Thrombocytopenia", "Too few platelets in the blood.", ["thrombocytopenia"]),
    _d("D009325", "Nausea", "Urge to vomit.", ["nausea"]),
    _d("D014839", "Vomiting", "Forceful expulsion of stomach contents.", ["vomiting", "emesis"]),
    _d("D001145", "Arrhythmias, Cardiac", "Abnormal heart rhythms.", ["arrhythmias", "cardiac arrhythmia"]),
    _d("D001919", "Bradycardia", "Slow heart rate.", ["bradycardia"]),
    _d("D003866", "Depressive Disorder", "Persistent low mood and loss of interest.", ["depression"]),
    _d(
        "D010300",
        "Parkinson Disease",
        "Progressive degenerative movement disorder.",
        ["Parkinson's disease", "PD"],
    ),
    _d("D000544", "Alzheimer Disease", "Progressive degenerative dementia.", ["Alzheimer's disease"]),
    _d("D011507", "Proteinuria", "Excess protein in the urine.", ["proteinuria"]),
    _d("D006261", "Headache", "Pain in the head.", ["headache"]),
    _d("D001249", "Asthma", "Chronic reversible airway obstruction.", ["asthma"]),
    _d("D006947", "Hyperkalemia", "Raised potassium in the blood.", ["hyperkalemia"]),
    _d("D000740", "Anemia", "Too little hemoglobin in the blood.", ["anemia"], ["anaemia"]),
    _d("D015179", "Colorectal Neoplasms", "Tumors of the colon or rectum.", ["colorectal cancer"]),
    _d("D008175", "Lung Neoplasms", "Tumors of the lung.", ["lung cancer"]),
    _d("D004827", "Epilepsy", "Disorder of recurrent unprovoked seizures.", ["epilepsy"]),
    _d("D010146", "Pain", "Unpleasant sensation from actual or potential damage.", ["pain"]),
    _d("D058186", "Acute Kidney Injury", "Sudden loss of kidney function.", ["acute kidney injury"]),
    _d("D003072", "Cognition Disorders", "Disturbances of thinking and memory.", ["cognitive impairment"]),
    _d("D009202", "Cardiomyopathies", "Diseases of the heart muscle.", ["cardiomyopathy"]),
    _d("D006470", "Hemorrhage", "Escape of blood from vessels.", ["bleeding", "hemorrhage"]),
    _d(
        "D001714",
        "Bipolar Disorder",
        "Mood disorder with manic and depressive episodes.",
        ["bipolar disorder"],
    ),
    _d("D004421", "Dystonia", "Sustained involuntary muscle contractions.", ["dystonia"], eval_only=True),
    _d("D020521", "Stroke", "Brain injury from interrupted blood flow.", ["stroke"], eval_only=True),
)

# NCBI-disease-like inherited disorders (MeSH or OMIM IDs); each with the gene the templates talk about.
GENETIC: tuple[tuple[Concept, str], ...] = (
    (
        _d(
            "OMIM:217000",
            "Complement component 2 deficiency",
            "Inherited lack of complement component C2.",
            ["C2 deficiency", "complement component 2 deficiency"],
        ),
        "C2",
    ),
    (
        _d(
            "OMIM:610102",
            "Complement component 7 deficiency",
            "Inherited lack of complement component C7.",
            ["C7 deficiency"],
        ),
        "C7",
    ),
    (
        _d(
            "OMIM:613825",
            "Complement component 9 deficiency",
            "Inherited lack of complement component C9.",
            ["C9 deficiency"],
        ),
        "C9",
    ),
    (
        _d(
            "OMIM:257200",
            "Niemann-Pick disease, type A",
            "Lysosomal sphingomyelinase deficiency of infancy.",
            ["Niemann-Pick disease type A"],
        ),
        "SMPD1",
    ),
    (
        _d(
            "OMIM:300100",
            "Adrenoleukodystrophy",
            "X-linked disorder of very-long-chain fatty acid breakdown.",
            ["adrenoleukodystrophy", "ALD"],
        ),
        "ABCD1",
    ),
    (
        _d(
            "OMIM:606824",
            "Glucose/galactose malabsorption",
            "Inherited defect of intestinal glucose transport.",
            ["glucose-galactose malabsorption"],
            eval_only=True,
        ),
        "SLC5A1",
    ),
    (
        _d(
            "D006816",
            "Huntington Disease",
            "Inherited neurodegenerative disorder with chorea.",
            ["Huntington disease", "HD"],
            ["Huntington's chorea"],
        ),
        "huntingtin",
    ),
    (
        _d(
            "D009223",
            "Myotonic Dystrophy",
            "Inherited muscular dystrophy with myotonia.",
            ["myotonic dystrophy"],
            ["dystrophia myotonica"],
        ),
        "DMPK",
    ),
    (
        _d(
            "D001260",
            "Ataxia Telangiectasia",
            "Inherited ataxia with telangiectases and immunodeficiency.",
            ["ataxia-telangiectasia", "A-T"],
        ),
        "ATM",
    ),
    (
        _d(
            "D020388",
            "Muscular Dystrophy, Duchenne",
            "X-linked muscular dystrophy from loss of dystrophin.",
            ["Duchenne muscular dystrophy", "DMD"],
        ),
        "dystrophin",
    ),
    (
        _d(
            "D005600",
            "Fragile X Syndrome",
            "X-linked intellectual disability from FMR1 repeat expansion.",
            ["fragile X syndrome"],
        ),
        "FMR1",
    ),
    (
        _d(
            "D006467",
            "Hemophilia A",
            "X-linked bleeding disorder from factor VIII deficiency.",
            ["hemophilia A"],
        ),
        "factor VIII",
    ),
)

# Composite mentions: one span, several concepts; "parts" spells each one out (BC5CDR's seventh column).
TOXICITY_COMPOSITES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("ocular and auditory toxicity", ("D014786", "D006311"), ("ocular toxicity", "auditory toxicity")),
    ("renal and hepatic toxicity", ("D007674", "D056486"), ("renal toxicity", "hepatic toxicity")),
)
CANCER_COMPOSITES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("breast and ovarian cancer", ("D001943", "D010051"), ("breast cancer", "ovarian cancer")),
    ("colorectal and lung cancer", ("D015179", "D008175"), ("colorectal cancer", "lung cancer")),
)
GENETIC_COMPOSITES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("C7 and C9 deficiency", ("OMIM:610102", "OMIM:613825"), ("C7 deficiency", "C9 deficiency")),
    ("C2 and C9 deficiencies", ("OMIM:217000", "OMIM:613825"), ("C2 deficiency", "C9 deficiency")),
)

# Chemicals with no MeSH concept: BC5CDR annotates them with ID -1.
NIL_CHEMICALS: tuple[str, ...] = ("[3H]-naloxone", "[3H]-dihydroalprenolol", "MRN-0417", "MRN-2291")

# Gene/protein and species names, only for the IOB datasets (PubTator files carry Chemical and Disease).
GENES: tuple[str, ...] = (
    "p53",
    "BRCA1",
    "HER2",
    "EGFR",
    "TNF-alpha",
    "interleukin-6",
    "IL-6",
    "insulin receptor",
    "cyclin D1",
    "MDM2",
    "c-myc",
    "Bcl-2",
    "dystrophin",
    "huntingtin",
    "ATM",
    "FMR1",
    "CFTR",
    "tyrosine hydroxylase",
)
GENES_EVAL: tuple[str, ...] = ("STAT3", "caspase-3", "VEGF")
SPECIES: tuple[str, ...] = (
    "human",
    "humans",
    "mice",
    "mouse",
    "rats",
    "rat",
    "Escherichia coli",
    "yeast",
    "Saccharomyces cerevisiae",
    "zebrafish",
    "Drosophila melanogaster",
    "rabbits",
    "dogs",
    "Caenorhabditis elegans",
)
SPECIES_EVAL: tuple[str, ...] = ("Arabidopsis thaliana", "pigs", "Xenopus laevis")

IOB_DATASETS: dict[str, dict] = {
    # name: entity type (the level of hierarchical sharing), the tag written, what the sentences come from
    "sample-chem": {"entity_type": "chemical", "tag": "Chemical", "source": "drug"},
    "sample-disease-a": {"entity_type": "disease", "tag": "Disease", "source": "drug"},
    "sample-disease-b": {"entity_type": "disease", "tag": "Disease", "source": "genetic"},
    "sample-gene": {"entity_type": "gene/protein", "tag": "GENE", "source": "bio"},
    "sample-species": {"entity_type": "species", "tag": "Species", "source": "bio"},
}
"""The IOB datasets: tag names follow the Crichton et al. files they imitate (BC5CDR-chem ``Chemical``,
BC5CDR-disease / NCBI-disease ``Disease``, BC2GM ``GENE``, linnaeus ``Species``)."""


def entity_base() -> list[tuple[str, str, str]]:
    """The sample's entity base, ``(ID, preferred name, definition)`` rows sorted by ID (``entities.tsv``)."""
    rows = {c.id: (c.id, c.name, c.definition) for c in (*CHEMICALS, *DISEASES, *(g for g, _ in GENETIC))}
    return [rows[k] for k in sorted(rows)]


# --------------------------------------------------------------------------------------------------
# Templates. Slots: {C} main chemical, {C2} another chemical, {D} the disease the document is about (or
# the induced one), {D2} {D3} other diseases, {AE} an adverse event, {X} a NIL chemical, {COMP} / {CCOMP}
# a composite toxicity / cancer mention, {G} / {G2} inherited disorders, {GCOMP} a composite of them,
# {GENE} the gene of {G} (plain text); {n} {m} {dose} {big} numbers; {pattern} an inheritance pattern.
# Bio sentences (IOB only): {GENE} {GENE2} genes, {S} {S2} species. Fixed text never contains a lexicon name.
# --------------------------------------------------------------------------------------------------

_DRUG_TITLES = (
    "{C}-induced {D}.",
    "{D} associated with {C} therapy: a case report.",
    "{C} and the risk of {D} in patients with {D2}.",
    "Reversal of {C}-induced {D} by {C2} in rats.",
    "{D} after treatment with {C}.",
    "Dose-dependent {D} during {C} treatment.",
)
_DRUG_INTROS = (
    "We describe {n} patients with {D2} who developed {D} during treatment with {C}.",
    "The aim of this study was to examine whether {C} causes {D} in rats.",
    "{C} is widely used in the treatment of {D2}, but its use may be limited by {D}.",
    "{D} is a known but rare complication of {C}.",
)
_DRUG_MIDDLES = (
    "{D} appeared within {n} days after the first dose of {C}.",
    "Rats received {C} at {dose} mg/kg for {n} weeks.",
    "The incidence of {D} was higher in the {C} group than in the placebo group.",
    "Pretreatment with {C2} prevented the {D} induced by {C}.",
    "Binding of {X} to brain membranes was not affected by {C}.",
    "{C} also caused {COMP} in some patients.",
    "{D} resolved after withdrawal of {C}.",
    "Serum levels of {C} did not correlate with the severity of {D}.",
    "No case of {D3} was observed.",
    "Concomitant use of {C2} was recorded in {n} patients.",
    "The effect of {X} on this response was also tested.",
)
_DRUG_ENDS = (
    "These findings suggest that {C} may induce {D} in susceptible patients.",
    "Clinicians should be aware of {D} as a possible adverse effect of {C}.",
    "{C}-induced {D} appears to be reversible and dose dependent.",
)
_TREAT_TITLES = (
    "{C} in the treatment of {D}: a randomized trial.",
    "Effect of {C} on {D} in elderly patients.",
    "Long-term {C} therapy for {D}.",
)
_TREAT_INTROS = (
    "{C} is a first-line drug for {D}.",
    "We randomized {n} patients with {D} to {C} or placebo.",
)
_TREAT_MIDDLES = (
    "After {n} weeks, {C} reduced the symptoms of {D} more than placebo.",
    "Adverse events included {AE} in {n} patients.",
    "Patients with a history of {D2} were excluded.",
    "Patients with {CCOMP} were not eligible.",
    "The combination of {C} and {C2} was well tolerated.",
    "Mean daily doses were {dose} mg of {C} and {m} mg of {C2}.",
    "{n} patients stopped {C} because of {AE}.",
)
_TREAT_ENDS = (
    "{C} is an effective and safe option for {D}.",
    "Larger trials of {C} in {D} are warranted.",
)
_GENETIC_TITLES = (
    "Molecular basis of {G} in {n} unrelated families.",
    "Mutations in the {GENE} gene cause {G}.",
    "{G}: clinical and genetic findings.",
)
_GENETIC_INTROS = (
    "{G} is an inherited disorder with {pattern} inheritance.",
    "We studied {n} patients with {G} from {m} families.",
)
_GENETIC_MIDDLES = (
    "Mutation analysis of the {GENE} gene identified {n} novel mutations.",
    "Patients with {G} often develop {D2}.",
    "The frequency of {G} in the general population is about 1 in {big}.",
    "Carriers showed no signs of {D2}.",
    "Unlike {G2}, {G} is not associated with {D2}.",
    "Two sisters had {GCOMP}.",
    "Linkage analysis placed the {G} locus near the {GENE} gene.",
)
_GENETIC_ENDS = (
    "These results extend the spectrum of mutations causing {G}.",
    "Genetic testing for {G} should be offered to relatives at risk.",
)
_BIO_SENTENCES = (
    "Expression of {GENE} was increased in {S} treated with {C}.",
    "{GENE} knockout {S} developed {D} within {n} weeks.",
    "We cloned the {GENE} gene from {S}.",
    "In {S}, {GENE} binds to {GENE2} and regulates cell growth.",
    "Levels of {GENE} in {S} were measured by western blot.",
    "The {GENE} homologue in {S} shares {n} % identity with the {S2} protein.",
    "{S} lacking {GENE} were viable but smaller than controls.",
    "{GENE} and {GENE2} were co-expressed in cells from {S}.",
)
_PATTERNS = ("autosomal recessive", "autosomal dominant", "X-linked")

_SLOT = re.compile(r"\{([A-Za-z0-9]+)\}")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass
class _Fill:
    """What one slot becomes: a mention (type/concept/attrs) or, with ``type`` empty, plain text."""

    text: str
    type: str = ""
    concept: str = ""
    attrs: dict | None = None


class _Writer:
    """Draws lexicon entries for one split: dev/test also draw the eval-only names and concepts."""

    def __init__(self, rng: random.Random, split: str):
        self.rng = rng
        self.eval = split != "train"
        self.chemicals = [c for c in CHEMICALS if self.eval or not c.eval_only]
        self.diseases = [c for c in DISEASES if self.eval or not c.eval_only]
        self.genetic = [(c, g) for c, g in GENETIC if self.eval or not c.eval_only]
        self.by_id = {c.id: c for c in (*CHEMICALS, *DISEASES, *(g for g, _ in GENETIC))}

    def form(self, concept: Concept) -> str:
        forms = list(concept.forms)
        if self.eval and concept.eval_forms and self.rng.random() < 0.4:
            return self.rng.choice(concept.eval_forms)
        # The preferred (first) form is the most frequent one, as in real abstracts.
        return forms[0] if len(forms) == 1 or self.rng.random() < 0.6 else self.rng.choice(forms[1:])

    def mention(self, concept: Concept) -> _Fill:
        return _Fill(self.form(concept), concept.type, concept.id)

    def composite(self, table) -> _Fill:
        text, ids, parts = self.rng.choice(table)
        return _Fill(text, "Disease", "|".join(ids), {"parts": parts})

    def pick(self, pool, exclude=()):
        return self.rng.choice([c for c in pool if c not in exclude])

    def numbers(self) -> dict[str, _Fill]:
        r = self.rng
        return {
            "n": _Fill(str(r.randint(2, 40))),
            "m": _Fill(str(r.randint(2, 12))),
            "dose": _Fill(str(r.choice([1, 2, 5, 10, 20, 50, 100, 200]))),
            "big": _Fill(f"{r.choice([10, 20, 40, 100])},000"),
            "pattern": _Fill(r.choice(_PATTERNS)),
        }


def _render(template: str, slots: dict) -> tuple[str, list[Mention]]:
    """Fill ``template``; a callable slot is called once per occurrence (a fresh surface form each time)."""
    text, mentions, pos = "", [], 0
    for match in _SLOT.finditer(template):
        text += template[pos : match.start()]
        fill = slots[match.group(1)]
        fill = fill() if callable(fill) else fill
        piece = fill.text
        if not text and piece[:1].islower():  # sentence-initial: capitalize, as a writer would
            piece = piece[0].upper() + piece[1:]
        if fill.type:
            mentions.append(
                Mention(
                    len(text), len(text) + len(piece), piece, fill.type, fill.concept, dict(fill.attrs or {})
                )
            )
        text += piece
        pos = match.end()
    return text + template[pos:], mentions


def _compose(rng: random.Random, titles, intros, middles, ends) -> list[str]:
    """A title and 4-6 abstract sentences: an intro, 2-4 distinct middle sentences, a conclusion."""
    body = rng.sample(list(middles), rng.randint(2, 4))
    return [rng.choice(titles), rng.choice(intros), *body, rng.choice(ends)]


def _drug_document(w: _Writer, treatment: bool) -> tuple[list[str], dict, list[tuple[str, str]]]:
    rng = w.rng
    chem = w.pick(w.chemicals)
    chem2 = w.pick(w.chemicals, exclude=(chem,))
    dis = w.pick(w.diseases)
    dis2 = w.pick(w.diseases, exclude=(dis,))
    dis3 = w.pick(w.diseases, exclude=(dis, dis2))
    adverse = w.pick(w.diseases, exclude=(dis, dis2))
    comp = w.composite(TOXICITY_COMPOSITES)
    slots = {
        **w.numbers(),
        "C": lambda: w.mention(chem),
        "C2": lambda: w.mention(chem2),
        "D": lambda: w.mention(dis),
        "D2": lambda: w.mention(dis2),
        "D3": lambda: w.mention(dis3),
        "AE": lambda: w.mention(adverse),
        "X": _Fill(rng.choice(NIL_CHEMICALS), "Chemical", NIL),
        "COMP": comp,
        "CCOMP": w.composite(CANCER_COMPOSITES),
    }
    if treatment:
        templates = _compose(rng, _TREAT_TITLES, _TREAT_INTROS, _TREAT_MIDDLES, _TREAT_ENDS)
        induced = [adverse.id] if any("{AE}" in t for t in templates) else []
    else:
        templates = _compose(rng, _DRUG_TITLES, _DRUG_INTROS, _DRUG_MIDDLES, _DRUG_ENDS)
        induced = [dis.id] + (list(comp.concept.split("|")) if any("{COMP}" in t for t in templates) else [])
    relations = [(chem.id, d) for d in dict.fromkeys(induced)]
    return templates, slots, relations


def _genetic_document(w: _Writer) -> tuple[list[str], dict, list[tuple[str, str]]]:
    rng = w.rng
    gen, gene = w.pick(w.genetic)
    gen2, _ = w.pick(w.genetic, exclude=((gen, gene),))
    dis2 = w.pick(w.diseases)
    slots = {
        **w.numbers(),
        "G": lambda: w.mention(gen),
        "G2": lambda: w.mention(gen2),
        "D2": lambda: w.mention(dis2),
        "GENE": _Fill(gene),
        "GCOMP": w.composite(GENETIC_COMPOSITES),
    }
    return _compose(rng, _GENETIC_TITLES, _GENETIC_INTROS, _GENETIC_MIDDLES, _GENETIC_ENDS), slots, []


def _sentences(templates: list[str], slots: dict) -> list[tuple[str, list[Mention]]]:
    return [_render(t, slots) for t in templates]


def _document(pmid: str, sentences: list[tuple[str, list[Mention]]], relations, source: str, index: int):
    """Join rendered sentences into a Document: title, one space, abstract (offsets into that text)."""
    title, title_mentions = sentences[0]
    mentions = list(title_mentions)
    abstract, offset = "", len(title) + 1
    for k, (sentence, sentence_mentions) in enumerate(sentences[1:]):
        if k:
            abstract += " "
        base = offset + len(abstract)
        for m in sentence_mentions:
            mentions.append(Mention(m.start + base, m.end + base, m.text, m.type, m.concept, m.attrs))
        abstract += sentence
    rels = [Relation("CID", a, b) for a, b in relations]
    return Document(pmid, title, abstract, mentions, rels, source=source, index=index)


def _kind(rng: random.Random) -> str:
    x = rng.random()
    return "drug" if x < 0.6 else "treatment" if x < 0.8 else "genetic"


def _draw(w: _Writer, kind: str):
    if kind == "genetic":
        return _genetic_document(w)
    return _drug_document(w, treatment=(kind == "treatment"))


def build_sample(seed: int = DEFAULT_SEED) -> dict[str, list[Document]]:
    """The sample corpus: ``{"train": [...80], "dev": [...20], "test": [...20]}``, the same for the same seed.

    PMIDs are synthetic (9xxxxxxx, above any real PubMed ID today), unique across splits.
    """
    out: dict[str, list[Document]] = {}
    pmid = 90000000 + 1000 * (seed % 1000)
    for split, size in SPLIT_SIZES.items():
        rng = random.Random(seed * 10 + _SPLIT_OFFSETS[split])
        writer = _Writer(rng, split)
        docs = []
        for index in range(size):
            pmid += 1
            templates, slots, relations = _draw(writer, _kind(rng))
            docs.append(
                _document(str(pmid), _sentences(templates, slots), relations, f"sample/{split}", index)
            )
        out[split] = docs
    return out


# --------------------------------------------------------------------------------------------------
# IOB datasets
# --------------------------------------------------------------------------------------------------


def _bio_sentence(w: _Writer) -> tuple[str, list[Mention]]:
    rng = w.rng
    genes = GENES + (GENES_EVAL if w.eval else ())
    species = SPECIES + (SPECIES_EVAL if w.eval else ())
    gene, gene2 = rng.sample(genes, 2)
    sp, sp2 = rng.sample(species, 2)
    slots = {
        **w.numbers(),
        "GENE": _Fill(gene, "GENE"),
        "GENE2": _Fill(gene2, "GENE"),
        "S": _Fill(sp, "Species"),
        "S2": _Fill(sp2, "Species"),
        "C": w.mention(w.pick(w.chemicals)),
        "D": w.mention(w.pick(w.diseases)),
    }
    return _render(rng.choice(_BIO_SENTENCES), slots)


def iob_lines(sentence: str, mentions: list[Mention], tag: str, mention_type: str) -> list[str]:
    """``token TAB tag`` lines of one sentence; only mentions of ``mention_type`` are tagged (as ``tag``)."""
    spans = [(m.start, m.end) for m in mentions if m.type == mention_type]
    lines, inside = [], None
    for tok in _TOKEN.finditer(sentence):
        span = next((s for s in spans if s[0] <= tok.start() and tok.end() <= s[1]), None)
        if span is None:
            label = "O"
        else:
            label = ("I-" if span == inside else "B-") + tag
        inside = span
        lines.append(f"{tok.group()}\t{label}")
    return lines


def build_iob(seed: int = DEFAULT_SEED) -> dict[str, dict[str, list[list[str]]]]:
    """``{dataset: {split: [sentence lines]}}`` for the datasets of :data:`IOB_DATASETS`."""
    out: dict[str, dict[str, list[list[str]]]] = {}
    for d, (name, spec) in enumerate(IOB_DATASETS.items()):
        mention_type = spec[
            "tag"
        ]  # the mention types are Chemical / Disease (lexicons), GENE / Species (bio)
        out[name] = {}
        for s, (split, size) in enumerate(IOB_SPLIT_SIZES.items()):
            rng = random.Random(seed * 1000 + 100 + 10 * d + s)
            writer = _Writer(rng, "train" if split == "train" else "test")
            sentences: list[list[str]] = []
            while len(sentences) < size:
                if spec["source"] == "bio":
                    rendered = [_bio_sentence(writer)]
                else:
                    kind = (
                        "genetic"
                        if spec["source"] == "genetic"
                        else rng.choice(["drug", "drug", "treatment"])
                    )
                    rendered = _sentences(*_draw(writer, kind)[:2])
                for text, mentions in rendered:
                    if len(sentences) < size:
                        sentences.append(iob_lines(text, mentions, spec["tag"], mention_type))
            out[name][split] = sentences
    return out


def format_iob(sentences: list[list[str]]) -> str:
    """Crichton layout: one ``token TAB tag`` line per token, a blank line after every sentence."""
    return "".join("\n".join(lines) + "\n\n" for lines in sentences)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _readme(seed: int, splits: dict[str, list[Document]], iob) -> str:
    lines = [
        "# The bundled sample corpus",
        "",
        "Synthetic, small, and shaped like the real corpora (BC5CDR, NCBI-disease, the Crichton et al. IOB",
        "collection), so every notebook runs in seconds without downloads. Generated by `mernlib/sample.py`",
        f"with seed {seed}; regenerate (byte-identical) from the repository root with:",
        "",
        "    python -m mernlib.sample",
        "",
        "Abstracts are assembled from hand-written sentence templates and lexicons of real chemical and",
        "disease names with their real MeSH IDs (a few inherited disorders carry OMIM IDs, as in",
        'NCBI-disease). Synonyms and abbreviations ("high blood pressure", "NIDDM", "CDDP") make',
        "normalization non-trivial; some names and concepts occur only in dev/test (out-of-vocabulary",
        "mentions). The text makes no medical claim.",
        "",
        "## Files",
        "",
        "- `train.pubtator`, `dev.pubtator`, `test.pubtator`: PubTator (title and abstract joined by one space;",
        '  composite mentions such as "ocular and auditory toxicity" carry `D014786|D006311` and a seventh',
        "  column naming the parts; `-1` marks chemicals with no MeSH concept; `CID` lines are",
        "  chemical-induced-disease relations).",
        "- `entities.tsv`: the entity base (ID TAB preferred name TAB short definition, no header), laid out",
        "  like the real `mesh.tsv`; OMIM entries are written `OMIM:<number>`. Definitions are written for",
        "  this kit.",
        "- `iob/<dataset>/{train,devel,test}.tsv`: token TAB tag, a blank line after each sentence.",
        "",
        "## Statistics",
        "",
        "| split | documents | Chemical | Disease | composite | NIL | concepts | CID |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split, docs in splits.items():
        st = corpus_stats(docs)
        per = st["mentions_per_type"]
        composite = sum(len(m.ids) > 1 for d in docs for m in d.mentions)
        nil = sum(m.concept == NIL for d in docs for m in d.mentions)
        cid = sum(len(d.relations) for d in docs)
        lines.append(
            f"| {split} | {st['documents']} | {per.get('Chemical', 0)} | {per.get('Disease', 0)} | "
            f"{composite} | {nil} | {st['concepts']} | {cid} |"
        )
    lines += [
        "",
        "| IOB dataset | entity type | tag | train / devel / test sentences | entities |",
        "|---|---|---|---|---|",
    ]
    for name, spec in IOB_DATASETS.items():
        sizes = " / ".join(str(len(iob[name][s])) for s in IOB_SPLIT_SIZES)
        entities = sum(
            line.endswith("\tB-" + spec["tag"]) for s in iob[name].values() for sent in s for line in sent
        )
        lines.append(
            f"| {name} | {spec['entity_type']} | `B-{spec['tag']}` / `I-{spec['tag']}` | {sizes} | "
            f"{entities} |"
        )
    return "\n".join(lines) + "\n"


def write_sample(out_dir: str | Path = "data/sample", seed: int = DEFAULT_SEED) -> Path:
    """Write the sample corpus into ``out_dir`` (see the module docstring); returns ``out_dir``."""
    out = Path(out_dir)
    splits = build_sample(seed)
    for split, docs in splits.items():
        _write(out / f"{split}.pubtator", format_pubtator(docs))
    _write(out / "entities.tsv", "".join("\t".join(row) + "\n" for row in entity_base()))
    iob = build_iob(seed)
    for name, by_split in iob.items():
        for split, sentences in by_split.items():
            _write(out / "iob" / name / f"{split}.tsv", format_iob(sentences))
    _write(out / "README.md", _readme(seed, splits, iob))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mernlib.sample", description="Write the bundled sample corpus."
    )
    parser.add_argument("out_dir", nargs="?", default="data/sample")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    out = write_sample(args.out_dir, args.seed)
    print(f"wrote the sample corpus to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
